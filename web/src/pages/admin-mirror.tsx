import { useEffect, useState } from 'preact/hooks';
import { api, formatDate, formatSize, useApi, type ApiError } from '../api.js';
import { ErrorNote, Loading } from '../components.js';

interface MirrorJob {
  id: string;
  source: string;
  destination: string;
  dryRun: boolean;
  status: 'running' | 'done' | 'failed' | 'cancelled' | 'interrupted';
  createdBy: string;
  createdAt: string;
  finishedAt: string | null;
  error: string | null;
  progress: {
    containers: number;
    images: { copied: number; tagged: number; unchanged: number; failed: number };
    bytes: { downloaded: number; uploaded: number };
    keys: { copied: string[]; present: string[]; missing: string[] } | null;
    recent: string[];
    failures: Array<{ dest: string; error: string }>;
  };
}

interface CacheEntry {
  path: string;
  upstream: string;
  fetchedAt: string;
  lastAccess: string;
  size: number;
}

/** What the pull-through cache holds, each container with its origin (hidden when no upstream is configured). */
function CachedContent() {
  const cache = useApi<{ entries: CacheEntry[] }>('/api/cache');
  if (!cache.data) return null;
  return (
    <>
      <h2>Pull-through cache</h2>
      {cache.data.entries.length === 0 ? (
        <p>Nothing cached yet.</p>
      ) : (
        <div class="scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Container</th>
                <th scope="col">Origin</th>
                <th scope="col">Size</th>
                <th scope="col">Fetched</th>
                <th scope="col">Last used</th>
              </tr>
            </thead>
            <tbody>
              {cache.data.entries.map((e) => (
                <tr key={e.path}>
                  <td>
                    <a href={`/library/${e.path}`}>{e.path}</a>
                  </td>
                  <td>{e.upstream}</td>
                  <td>{formatSize(e.size)}</td>
                  <td>{formatDate(e.fetchedAt)}</td>
                  <td>{formatDate(e.lastAccess)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

/** Server-side mirror jobs: start one, watch its progress (refreshed while a job runs). */
export function Mirror() {
  const jobs = useApi<MirrorJob[]>('/api/admin/mirror');
  const [error, setError] = useState<ApiError | null>(null);
  const running = jobs.data?.some((j) => j.status === 'running') ?? false;
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(jobs.reload, 2000);
    return () => clearInterval(timer);
  }, [running, jobs.reload]);

  const start = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const get = (name: string) => String(new FormData(form).get(name) ?? '').trim();
    const body = {
      source: get('source'),
      destination: get('destination') || undefined,
      sourceToken: get('sourceToken') || undefined,
      dryRun: get('dryRun') === 'on',
    };
    try {
      await api('/api/admin/mirror', { method: 'POST', body });
      setError(null);
      form.reset();
      jobs.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  };

  return (
    <>
      <h2>Mirror</h2>
      <p>Copy an entity, collection, container or tag of another library (library://HOST/…) or an ORAS repository (oras://HOST/REPO) into this server.</p>
      <form class="stack inline-form" onSubmit={start} aria-label="Start a mirror">
        <label for="mirror-source">Source</label>
        <input id="mirror-source" name="source" required placeholder="library://library.example.org/entity/collection" />
        <label for="mirror-destination">Destination path here (empty: the source's names)</label>
        <input id="mirror-destination" name="destination" placeholder="entity/collection" />
        <label for="mirror-token">Source token (optional)</label>
        <input id="mirror-token" name="sourceToken" type="password" autocomplete="off" />
        <label class="check">
          <input type="checkbox" name="dryRun" /> Dry run
        </label>
        <button type="submit">Start mirror</button>
      </form>
      <ErrorNote error={error ?? jobs.error} />
      {jobs.loading && !jobs.data && <Loading />}
      <ul class="cards" aria-label="Mirror jobs">
        {jobs.data?.map((j) => (
          <li class="card" key={j.id} data-job={j.id}>
            <h3>
              {j.source} → {j.destination.replace(/^library:\/\/[^/]+\/?/, '') || '(same names)'}
            </h3>
            <p>
              <strong class={`status status-${j.status}`}>{j.status}</strong>
              {j.dryRun ? ' (dry run)' : ''} · started {formatDate(j.createdAt)} by {j.createdBy}
              {j.finishedAt ? ` · ended ${formatDate(j.finishedAt)}` : ''}
            </p>
            <p class="mirror-progress">
              {j.progress.containers} containers · {j.progress.images.copied} copied · {j.progress.images.tagged} re-tagged · {j.progress.images.unchanged} unchanged ·{' '}
              {j.progress.images.failed} failed · {formatSize(j.progress.bytes.downloaded)} fetched
              {j.progress.keys ? ` · ${j.progress.keys.copied.length} keys copied` : ''}
            </p>
            {j.error && <p class="error">{j.error}</p>}
            {j.progress.recent.length > 0 && (
              <details>
                <summary>Recent</summary>
                <ul>
                  {j.progress.recent.map((line, i) => (
                    <li key={i}>{line}</li>
                  ))}
                </ul>
              </details>
            )}
          </li>
        ))}
      </ul>
      <CachedContent />
    </>
  );
}
