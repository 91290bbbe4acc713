import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { api, type ApiError, type Session } from '../api.js';
import { ErrorNote, PageTitle } from '../components.js';
import { useSession } from '../session.js';

export function SignIn() {
  const { setSession } = useSession();
  const { route, query } = useLocation();
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
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
      route(query.next && query.next.startsWith('/') && !query.next.startsWith('//') ? query.next : '/');
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
