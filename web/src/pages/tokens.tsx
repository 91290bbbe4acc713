import { useState } from 'preact/hooks';
import { api, enc, formatDate, useApi, type ApiError } from '../api.js';
import { Copyable, ErrorNote, Loading, PageTitle } from '../components.js';
import { useSession } from '../session.js';
import { SignInFirst } from './signin.js';

interface TokenInfo {
  id: string;
  name: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const EXPIRY_CHOICES: Array<[string, number | null]> = [
  ['7 days', 7],
  ['30 days', 30],
  ['90 days', 90],
  ['1 year', 365],
  ['never', null],
];

/** The commands that point Apptainer (and the shelf client) at this server. */
function RemoteCommands({ username }: { username: string }) {
  const origin = location.origin;
  const insecure = location.protocol === 'http:' ? ' --insecure' : '';
  return (
    <section aria-labelledby="remote-heading">
      <h2 id="remote-heading">Use a token with Apptainer</h2>
      <p>Add this server as a remote, then log in and paste the token when asked:</p>
      <Copyable label="apptainer remote add" text={`apptainer remote add --no-login${insecure} shelf ${origin}`} />
      <Copyable label="apptainer remote login" text="apptainer remote login shelf" />
      <Copyable label="apptainer remote use" text="apptainer remote use shelf" />
      <p>For oras:// pulls and pushes, log in to the registry with the token as password:</p>
      <Copyable label="apptainer registry login" text={`apptainer registry login --username ${username} oras://${location.host}`} />
      <p>With the shelf client:</p>
      <Copyable label="shelf remote add" text={`shelf remote add shelf ${origin}`} />
      <Copyable label="shelf remote login" text="shelf remote login shelf --token-stdin" />
    </section>
  );
}

export function Tokens() {
  const { session } = useSession();
  if (!session) {
    return (
      <section>
        <PageTitle>Access tokens</PageTitle>
        <SignInFirst />
      </section>
    );
  }
  return <TokensFor username={session.username} />;
}

function TokensFor({ username }: { username: string }) {
  const base = `/api/users/${enc(username)}/tokens`;
  const list = useApi<TokenInfo[]>(base);
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    const formEl = e.currentTarget as HTMLFormElement;
    const form = new FormData(formEl);
    const name = String(form.get('name') ?? '').trim();
    const days = String(form.get('expiry'));
    const expiresAt = days === 'never' ? undefined : new Date(Date.now() + Number(days) * 86_400_000).toISOString();
    try {
      const { token } = await api<{ token: string }>(base, { method: 'POST', body: { name, ...(expiresAt ? { expiresAt } : {}) } });
      setCreated({ name, token });
      setError(null);
      // Only the name is cleared: the chosen expiry stays for the next token.
      (formEl.elements.namedItem('name') as HTMLInputElement).value = '';
      list.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const [notice, setNotice] = useState('');
  const revoke = async (t: TokenInfo) => {
    if (!window.confirm(`Revoke the token "${t.name}"? Everything using it stops working at once.`)) return;
    try {
      await api(`${base}/${enc(t.id)}`, { method: 'DELETE' });
      setNotice(`Token ${t.name} revoked.`);
      list.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const tokens = (list.data ?? []).filter((t) => !t.name.startsWith('sign-in '));
  return (
    <section>
      <PageTitle>Access tokens</PageTitle>
      <form class="stack inline-form" onSubmit={create} aria-labelledby="new-token">
        <h2 id="new-token">New token</h2>
        <label for="token-name">Name</label>
        <input id="token-name" name="name" required maxLength={100} placeholder="laptop, CI, …" />
        <label for="token-expiry">Expires after</label>
        <select id="token-expiry" name="expiry">
          {EXPIRY_CHOICES.map(([label, days]) => (
            <option key={label} value={days === null ? 'never' : String(days)} selected={days === 90}>
              {label}
            </option>
          ))}
        </select>
        <button type="submit">Create token</button>
      </form>
      <ErrorNote error={error} />
      {created && (
        <div class="new-token" role="status">
          <p>
            Token <strong>{created.name}</strong> created. Copy it now: it is shown only once.
          </p>
          <Copyable label="new token" text={created.token} />
        </div>
      )}
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <h2>Your tokens</h2>
      {list.loading && <Loading />}
      <ErrorNote error={list.error} />
      {list.data && tokens.length === 0 && <p>No tokens yet.</p>}
      {tokens.length > 0 && (
        <div>
          <table class="token-list stacked">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {tokens.map((t) => {
                const expired = t.expiresAt !== null && Date.parse(t.expiresAt) <= Date.now();
                return (
                  <tr key={t.id}>
                    <th scope="row">{t.name}</th>
                    <td data-label="Created">{formatDate(t.createdAt)}</td>
                    <td data-label="Expires">{t.expiresAt ? formatDate(t.expiresAt) : 'never'}</td>
                    <td data-label="Last used">{formatDate(t.lastUsedAt)}</td>
                    <td data-label="State">
                      {t.revokedAt ? (
                        'revoked'
                      ) : expired ? (
                        'expired'
                      ) : (
                        <button type="button" onClick={() => revoke(t)} aria-label={`Revoke token ${t.name}`}>
                          Revoke
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <RemoteCommands username={username} />
    </section>
  );
}
