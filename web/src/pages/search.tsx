import { useEffect, useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, enc, type ApiError } from '../api.js';
import { ErrorNote, Loading, PageTitle } from '../components.js';
import { ContainerList, type ContainerSummary } from './listing.js';

interface Results {
  entities: Array<{ name: string; description: string }>;
  collections: Array<{ entity: string; name: string; description: string }>;
  containers: ContainerSummary[];
  next: string | null;
}

const ARCHES = ['amd64', 'arm64', 'ppc64le', 's390x', '386', 'riscv64'];
const PAGE = 20;

function searchPath(q: string, arch: string, signed: boolean, cursor: string | null): string {
  const p = new URLSearchParams({ q, limit: String(PAGE) });
  if (arch) p.set('arch', arch);
  if (signed) p.set('signed', 'true');
  if (cursor) p.set('cursor', cursor);
  return `/api/browse/search?${p}`;
}

/** Search and browse-all: results as you type (debounced), arch and signed filters, "show more" paging. */
export function SearchPage() {
  const { query, route } = useLocation();
  const [text, setText] = useState(query.q ?? '');
  const [arch, setArch] = useState(query.arch ?? '');
  const [signed, setSigned] = useState(query.signed === 'true');
  const [results, setResults] = useState<Results | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);

  // A search from the header while this page is open: take its text (not our own address updates).
  const routed = useRef<string | null>(null);
  useEffect(() => {
    const fromAddress = query.q ?? '';
    if (routed.current !== fromAddress) setText(fromAddress);
  }, [query.q]);

  // Typing updates the address (so the page can be shared and reloaded) a moment after the last key.
  useEffect(() => {
    const t = setTimeout(() => {
      const p = new URLSearchParams();
      if (text.trim()) p.set('q', text.trim());
      if (arch) p.set('arch', arch);
      if (signed) p.set('signed', 'true');
      const next = `/search${p.size ? `?${p}` : ''}`;
      routed.current = text.trim();
      if (next !== `${location.pathname}${location.search}`) route(next, true);
    }, 250);
    return () => clearTimeout(t);
  }, [text, arch, signed]);

  const q = (query.q ?? '').trim();
  const qArch = query.arch ?? '';
  const qSigned = query.signed === 'true';
  useEffect(() => {
    let live = true;
    setLoading(true);
    api<Results>(searchPath(q, qArch, qSigned, null)).then(
      (r) => live && (setResults(r), setError(null), setLoading(false)),
      (err: ApiError) => live && (setResults(null), setError(err), setLoading(false)),
    );
    return () => {
      live = false;
    };
  }, [q, qArch, qSigned]);

  const more = async () => {
    if (!results?.next) return;
    try {
      const r = await api<Results>(searchPath(q, qArch, qSigned, results.next));
      setResults({ ...results, containers: [...results.containers, ...r.containers], next: r.next });
    } catch (err) {
      setError(err as ApiError);
    }
  };

  const title = q ? `Search: ${q}` : 'All containers';
  return (
    <section>
      <PageTitle>{title}</PageTitle>
      <form class="filters" role="search" aria-label="Search and filters" onSubmit={(e) => e.preventDefault()}>
        <label for="search-text">Name, description, tag or digest</label>
        <input id="search-text" type="search" value={text} onInput={(e) => setText(e.currentTarget.value)} />
        <label for="search-arch">Architecture</label>
        <select id="search-arch" value={arch} onChange={(e) => setArch(e.currentTarget.value)}>
          <option value="">any</option>
          {ARCHES.map((a) => (
            <option key={a} value={a}>
              {a}
            </option>
          ))}
        </select>
        <label class="check">
          <input type="checkbox" checked={signed} onChange={(e) => setSigned(e.currentTarget.checked)} /> Signed and verified only
        </label>
      </form>
      {loading && <Loading />}
      <ErrorNote error={error} />
      {results && !loading && (
        <>
          <p role="status">
            {results.containers.length === 0 ? 'Nothing matches.' : `${results.containers.length}${results.next ? '+' : ''} containers`}
          </p>
          <ContainerList items={results.containers} empty="" />
          {results.next && (
            <button type="button" onClick={more}>
              Show more
            </button>
          )}
          {results.collections.length > 0 && (
            <>
              <h2>Collections</h2>
              <ul>
                {results.collections.map((c) => (
                  <li key={`${c.entity}/${c.name}`}>
                    <a href={`/library/${enc(c.entity)}/${enc(c.name)}`}>
                      {c.entity}/{c.name}
                    </a>
                    {c.description && ` — ${c.description}`}
                  </li>
                ))}
              </ul>
            </>
          )}
          {results.entities.length > 0 && (
            <>
              <h2>Entities</h2>
              <ul>
                {results.entities.map((e) => (
                  <li key={e.name}>
                    <a href={`/library/${enc(e.name)}`}>{e.name}</a>
                    {e.description && ` — ${e.description}`}
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
