import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, ApiError, type Session } from '../api.js';
import { ErrorNote, PageTitle } from '../components.js';
import { useSession } from '../session.js';

/** What the server says the sign-in page may offer (`GET /api/signin-methods`). */
interface SignInMethods {
  password: boolean;
  oidc: { name: string; url: string } | null;
}

/** A UI path to go to after signing in: only this server's own. */
const safeNext = (next: string | undefined) => (next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/');

export function SignIn() {
  const { setSession } = useSession();
  const { route, query } = useLocation();
  const [error, setError] = useState<Error | null>(query.oidcError ? new Error(`Sign-in failed: ${query.oidcError}`) : null);
  const [busy, setBusy] = useState(false);
  const [methods, setMethods] = useState<SignInMethods | null>(null);
  const next = safeNext(query.next);

  useEffect(() => {
    fetch('/api/signin-methods')
      .then((res) => (res.ok ? (res.json() as Promise<{ data?: SignInMethods }>) : null))
      .then((answer) => setMethods(answer?.data ?? null))
      .catch(() => setMethods(null));
  }, []);

  // Back from the OpenID provider: the server holds the new session for this browser, once.
  useEffect(() => {
    if (query.oidc !== 'done') return;
    setBusy(true);
    api<Session>('/api/oidc/session', { method: 'POST' })
      .then((s) => {
        setSession(s);
        route(next, true);
      })
      .catch((err: unknown) => setError(err instanceof Error ? err : new ApiError(500, String(err))))
      .finally(() => setBusy(false));
  }, [query.oidc]);

  const submit = async (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    setBusy(true);
    try {
      const s = await api<Session>('/api/login', {
        method: 'POST',
        body: { username: form.get('username'), password: form.get('password') },
      });
      setSession(s);
      route(next);
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="narrow">
      <PageTitle>Sign in</PageTitle>
      <form onSubmit={submit} class="stack" aria-describedby={error ? 'signin-error' : undefined}>
        <label for="username">User name</label>
        <input id="username" name="username" autocomplete="username" required autoFocus />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      {methods?.oidc && (
        <form method="get" action={methods.oidc.url} class="stack signin-other">
          <input type="hidden" name="next" value={next} />
          <button type="submit" disabled={busy}>
            Sign in with {methods.oidc.name}
          </button>
        </form>
      )}
      <div id="signin-error">
        <ErrorNote error={error} />
      </div>
    </section>
  );
}

/** Shown on pages that need an account. */
export function SignInFirst() {
  const { url } = useLocation();
  return (
    <p>
      Please <a href={`/signin?next=${encodeURIComponent(url)}`}>sign in</a> first.
    </p>
  );
}
