import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { LocationProvider, Route, Router, useLocation } from 'preact-iso';
import { api, loadSession, saveSession, SIGNED_OUT_EVENT, type Session } from './api.js';
import { SessionContext, useSession } from './session.js';
import { Home } from './pages/home.js';
import { SearchPage } from './pages/search.js';
import { EntityPage, CollectionPage } from './pages/namespaces.js';
import { ContainerPage } from './pages/container.js';
import { SignIn } from './pages/signin.js';
import { Tokens } from './pages/tokens.js';
import { WebhooksPage } from './pages/webhooks.js';
import { Account } from './pages/account.js';
import { Admin } from './pages/admin.js';
import { PageTitle } from './components.js';
import { BuildPage, BuildsPage } from './pages/builds.js';
import './style.css';

function Header() {
  const { session, setSession } = useSession();
  const { route, query } = useLocation();
  const signOut = async () => {
    await api('/api/logout', { method: 'POST' }).catch(() => undefined);
    setSession(null);
    route('/');
  };
  return (
    <header class="top">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <a class="brand" href="/">
        Shelf
      </a>
      <form
        class="search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          const q = new FormData(e.currentTarget).get('q')?.toString().trim();
          if (q) route(`/search?q=${encodeURIComponent(q)}`);
        }}
      >
        <label for="top-search" class="visually-hidden">
          Search containers
        </label>
        <input id="top-search" name="q" type="search" placeholder="Search containers" defaultValue={query.q ?? ''} />
        <button type="submit">Search</button>
      </form>
      <nav aria-label="Account">
        {session ? (
          <>
            <a href="/builds">Builds</a>
            <a href="/tokens">Access tokens</a>
            <a href="/webhooks">Webhooks</a>
            <a href="/account">{session.username}</a>
            {session.admin && <a href="/admin">Admin</a>}
            <button type="button" class="link" onClick={signOut}>
              Sign out
            </button>
          </>
        ) : (
          <a href="/signin">Sign in</a>
        )}
      </nav>
    </header>
  );
}

function NotFound() {
  return (
    <section>
      <PageTitle>Not found</PageTitle>
      <p>
        There is nothing here. <a href="/">Back to the start page</a>.
      </p>
    </section>
  );
}

function App() {
  const [session, setSessionState] = useState<Session | null>(loadSession());
  const setSession = (s: Session | null) => {
    saveSession(s);
    setSessionState(s);
  };
  useEffect(() => {
    const lost = () => setSessionState(null);
    window.addEventListener(SIGNED_OUT_EVENT, lost);
    return () => window.removeEventListener(SIGNED_OUT_EVENT, lost);
  }, []);
  return (
    <SessionContext.Provider value={{ session, setSession }}>
      <LocationProvider>
        <Header />
        <main id="main" tabIndex={-1}>
          {/* Remount on sign-in/out so every page reloads what the new identity may see. */}
          <Router key={session?.token ?? 'anonymous'}>
            <Route path="/" component={Home} />
            <Route path="/search" component={SearchPage} />
            <Route path="/signin" component={SignIn} />
            <Route path="/tokens" component={Tokens} />
            <Route path="/webhooks" component={WebhooksPage} />
            <Route path="/account" component={Account} />
            <Route path="/builds" component={BuildsPage} />
            <Route path="/builds/:id" component={BuildPage} />
            <Route path="/admin" component={Admin} />
            <Route path="/admin/:section" component={Admin} />
            <Route path="/library/:entity" component={EntityPage} />
            <Route path="/library/:entity/:collection" component={CollectionPage} />
            <Route path="/library/:entity/:collection/:container" component={ContainerPage} />
            <Route default component={NotFound} />
          </Router>
        </main>
      </LocationProvider>
    </SessionContext.Provider>
  );
}

render(<App />, document.getElementById('app')!);
