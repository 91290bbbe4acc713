import { useEffect, useState } from 'preact/hooks';
import { useRoute } from 'preact-iso';
import { api, apiText, enc, formatDate, formatSize, useApi, type ApiError } from '../api.js';
import { Badge, ErrorNote, Loading, PageTitle } from '../components.js';
import { useSession } from '../session.js';

/** BuildInfo as `GET v1/build/{id}` answers it. */
interface Build {
  id: string;
  isComplete: boolean;
  imageSize: number;
  libraryRef: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled' | string;
  arch: string;
  error: string | null;
  submitTime: string;
  startTime: string | null;
  endTime: string | null;
  expiresAt: string | null;
}

const STATE_KIND: Record<string, 'ok' | 'warn' | 'bad' | 'plain'> = { succeeded: 'ok', failed: 'bad', canceled: 'warn' };

function StateBadge({ state }: { state: string }) {
  return <Badge kind={STATE_KIND[state] ?? 'plain'}>{state}</Badge>;
}

/** `library://entity/collection/container:tag` → the container page of the built image. */
function resultPath(libraryRef: string): string {
  const [entity, collection, container] = libraryRef.replace(/^library:\/\//, '').replace(/:[^/]*$/, '').split('/');
  return `/library/${enc(entity ?? '')}/${enc(collection ?? '')}/${enc(container ?? '')}`;
}

function ResultLink({ build }: { build: Build }) {
  if (build.state !== 'succeeded') return <span>{build.libraryRef}</span>;
  return <a href={resultPath(build.libraryRef)}>{build.libraryRef.replace(/^library:\/\//, '')}</a>;
}

const useSignedIn = () => useSession().session !== null;

function SignInFirst() {
  return (
    <p>
      <a href="/signin">Sign in</a> to see your builds.
    </p>
  );
}

/** The signed-in user's builds, newest first. */
export function BuildsPage() {
  const signedIn = useSignedIn();
  const list = useApi<Build[]>(signedIn ? '/v1/builds' : null);
  return (
    <section>
      <PageTitle>Builds</PageTitle>
      {!signedIn && <SignInFirst />}
      {signedIn && list.loading && <Loading />}
      <ErrorNote error={list.error} />
      {list.data && list.data.length === 0 && <p>No builds yet. Start one with the Build button on a container page.</p>}
      {list.data && list.data.length > 0 && (
        <div class="scroll">
          <table class="builds">
            <thead>
              <tr>
                <th scope="col">Build</th>
                <th scope="col">State</th>
                <th scope="col">Architecture</th>
                <th scope="col">Submitted</th>
                <th scope="col">Result</th>
              </tr>
            </thead>
            <tbody>
              {list.data.map((b) => (
                <tr key={b.id}>
                  <th scope="row">
                    <a href={`/builds/${enc(b.id)}`}>{b.id}</a>
                  </th>
                  <td>
                    <StateBadge state={b.state} />
                  </td>
                  <td>{b.arch}</td>
                  <td>{formatDate(b.submitTime)}</td>
                  <td>
                    <ResultLink build={b} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** One build: its state and log, followed until it ends. */
export function BuildPage() {
  const { params } = useRoute();
  const id = params.id!;
  const signedIn = useSignedIn();
  const [build, setBuild] = useState<Build | null>(null);
  const [log, setLog] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    if (!signedIn) return;
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        // Status first: a log read after seeing the end holds every line.
        const b = await api<Build>(`/v1/build/${enc(id)}`);
        const text = await apiText(`/v1/build/${enc(id)}/_log`);
        if (!live) return;
        setBuild(b);
        setLog(text);
        if (!b.isComplete) timer = setTimeout(poll, 1000);
      } catch (err) {
        if (live) setError(err as ApiError);
      }
    };
    void poll();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [id, signedIn]);
  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="/builds">Builds</a> / {id}
      </nav>
      <PageTitle>{`Build ${id}`}</PageTitle>
      {!signedIn && <SignInFirst />}
      <ErrorNote error={error} />
      {signedIn && !build && !error && <Loading />}
      {build && (
        <>
          <dl class="facts">
            <dt>State</dt>
            <dd aria-live="polite" data-testid="build-state">
              <StateBadge state={build.state} />
            </dd>
            <dt>Result</dt>
            <dd>
              <ResultLink build={build} />
              {build.state === 'succeeded' && ` (${formatSize(build.imageSize)})`}
            </dd>
            <dt>Architecture</dt>
            <dd>{build.arch}</dd>
            <dt>Submitted</dt>
            <dd>{formatDate(build.submitTime)}</dd>
            <dt>Finished</dt>
            <dd>{formatDate(build.endTime)}</dd>
            {build.expiresAt && (
              <>
                <dt>Expires</dt>
                <dd>{formatDate(build.expiresAt)}</dd>
              </>
            )}
            {build.error && (
              <>
                <dt>Error</dt>
                <dd class="error">{build.error}</dd>
              </>
            )}
          </dl>
          <h2>Log</h2>
          <pre class="build-log" aria-label="Build log" tabIndex={0}>
            {log}
          </pre>
        </>
      )}
    </section>
  );
}

const toBase64 = (text: string): string => {
  let bin = '';
  for (const byte of new TextEncoder().encode(text)) bin += String.fromCharCode(byte);
  return btoa(bin);
};

/** The Build button of a container page: a definition file starting from this container, submitted to the builder. */
export function BuildButton({ fromRef }: { fromRef: string }) {
  const [open, setOpen] = useState(false);
  const [definition, setDefinition] = useState(`Bootstrap: library\nFrom: ${fromRef}\n\n%post\n`);
  const [libraryRef, setLibraryRef] = useState('');
  const [submitted, setSubmitted] = useState<Build | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  if (!useSignedIn()) return null;
  if (!open)
    return (
      <p>
        <button type="button" onClick={() => setOpen(true)}>
          Build
        </button>
      </p>
    );
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const ref = libraryRef.trim();
      setSubmitted(await api<Build>('/v1/build', { method: 'POST', body: { definitionRaw: toBase64(definition), libraryRef: ref ? `library://${ref.replace(/^library:\/\//, '')}` : '' } }));
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="build-form" onSubmit={submit} aria-label="Build from this container">
      <label for="build-def">Definition file</label>
      <textarea id="build-def" rows={10} cols={70} spellcheck={false} value={definition} onInput={(e) => setDefinition(e.currentTarget.value)} />
      <label for="build-ref">Push the result to (optional; empty: your remote-builds collection, expires)</label>
      <input id="build-ref" placeholder="entity/collection/container:tag" value={libraryRef} onInput={(e) => setLibraryRef(e.currentTarget.value)} />
      <p>
        <button type="submit" disabled={busy}>
          Submit build
        </button>{' '}
        <button type="button" class="link" onClick={() => setOpen(false)}>
          Close
        </button>
      </p>
      <ErrorNote error={error} />
      {submitted && (
        <p role="status">
          Build <a href={`/builds/${enc(submitted.id)}`}>{submitted.id}</a> submitted. All your builds: <a href="/builds">Builds</a>.
        </p>
      )}
    </form>
  );
}
