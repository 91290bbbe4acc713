import { useLocation } from 'preact-iso';
import { enc, formatDate, useApi } from '../api.js';
import { Badge, ErrorNote, Loading, PageTitle } from '../components.js';
import { containerHref } from './listing.js';

interface Results {
  entities: Array<{ name: string; description: string }>;
  collections: Array<{ entity: string; name: string; description: string }>;
  containers: Array<{
    entity: string;
    collection: string;
    container: string;
    description: string;
    updatedAt: string;
    tags: string[];
    arches: string[];
    signature: 'verified' | 'unknown-key' | 'invalid' | 'unsigned';
  }>;
  next: string | null;
}

export function SearchPage() {
  const { query } = useLocation();
  const q = (query.q ?? '').trim();
  const results = useApi<Results>(q ? `/api/browse/search?q=${enc(q)}` : null);
  const r = results.data;
  const total = r ? r.entities.length + r.collections.length + r.containers.length : 0;
  return (
    <section>
      <PageTitle>{`Search: ${q}`}</PageTitle>
      {!q && <p>Type a word into the search box.</p>}
      {q && results.loading && <Loading />}
      <ErrorNote error={results.error} />
      {r && (
        <>
          <p role="status">{total === 0 ? 'Nothing matches.' : `${total} results`}</p>
          {r.containers.length > 0 && (
            <>
              <h2>Containers</h2>
              <ul class="cards">
                {r.containers.map((k) => (
                  <li class="card" key={containerHref(k)}>
                    <h3>
                      <a href={containerHref(k)}>
                        {k.entity}/{k.collection}/{k.container}
                      </a>{' '}
                      {k.signature === 'verified' && <Badge kind="ok">signed</Badge>}
                    </h3>
                    <p>{k.description}</p>
                    <p class="meta">
                      {k.tags.map((t) => (
                        <Badge key={t} kind="plain">
                          {t}
                        </Badge>
                      ))}{' '}
                      {k.arches.join(', ') || 'any arch'} · {formatDate(k.updatedAt)}
                    </p>
                  </li>
                ))}
              </ul>
            </>
          )}
          {r.collections.length > 0 && (
            <>
              <h2>Collections</h2>
              <ul>
                {r.collections.map((c) => (
                  <li key={`${c.entity}/${c.name}`}>
                    <a href={`/library/${enc(c.entity)}/${enc(c.name)}`}>
                      {c.entity}/{c.name}
                    </a>{' '}
                    — {c.description}
                  </li>
                ))}
              </ul>
            </>
          )}
          {r.entities.length > 0 && (
            <>
              <h2>Entities</h2>
              <ul>
                {r.entities.map((e) => (
                  <li key={e.name}>
                    <a href={`/library/${enc(e.name)}`}>{e.name}</a> — {e.description}
                  </li>
                ))}
              </ul>
            </>
          )}
        </>
      )}
    </section>
  );
}
