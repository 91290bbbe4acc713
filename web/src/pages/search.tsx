import { useLocation } from 'preact-iso';
import { enc, formatDate, useApi } from '../api.js';
import { Badge, ErrorNote, Loading, PageTitle } from '../components.js';
import { containerHref } from './listing.js';

interface Results {
  entities: Array<{ name: string; description: string }>;
  collections: Array<{ entity: string; name: string; description: string }>;
  containers: Array<{ entity: string; collection: string; container: string; description: string; updatedAt: string }>;
  images: Array<{ entity: string; collection: string; container: string; digest: string; arch: string | null; signed: boolean; tags: string[]; updatedAt: string }>;
}

export function SearchPage() {
  const { query } = useLocation();
  const q = (query.q ?? '').trim();
  const results = useApi<Results>(q ? `/api/browse/search?q=${enc(q)}` : null);
  const r = results.data;
  const total = r ? r.entities.length + r.collections.length + r.containers.length + r.images.length : 0;
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
                      </a>
                    </h3>
                    <p>{k.description}</p>
                  </li>
                ))}
              </ul>
            </>
          )}
          {r.images.length > 0 && (
            <>
              <h2>Images</h2>
              <ul class="cards">
                {r.images.map((i) => (
                  <li class="card" key={i.digest + containerHref(i)}>
                    <h3>
                      <a href={containerHref(i)}>
                        {i.entity}/{i.collection}/{i.container}
                      </a>{' '}
                      {i.signed && <Badge kind="ok">signed</Badge>}
                    </h3>
                    <p class="meta">
                      {i.tags.map((t) => (
                        <Badge key={t} kind="plain">
                          {t}
                        </Badge>
                      ))}{' '}
                      {i.arch ?? 'any arch'} · <code class="digest">{i.digest.slice(0, 19)}…</code> · {formatDate(i.updatedAt)}
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
