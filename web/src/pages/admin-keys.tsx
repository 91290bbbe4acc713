import { api, enc, formatDate, useApi } from '../api.js';
import { ErrorNote, Loading } from '../components.js';
import { Done, useAction } from './admin-actions.js';

interface KeyInfo {
  fingerprint: string;
  userIds: string[];
  owner: string | null;
  addedAt: string;
  expiresAt: string | null;
  revoked: boolean;
}

const COLUMNS = ['Fingerprint', 'User IDs', 'Added by', 'Added', 'Action'];

function KeyRow({ info: k, onRemove }: { info: KeyInfo; onRemove: (k: KeyInfo) => void }) {
  return (
    <tr>
      <th scope="row">
        <code>{k.fingerprint}</code>
        {k.revoked ? ' (revoked)' : ''}
      </th>
      <td data-label="User IDs">{k.userIds.join(', ')}</td>
      <td data-label="Added by">{k.owner ?? 'nobody'}</td>
      <td data-label="Added">{formatDate(k.addedAt)}</td>
      <td data-label="Action">
        <button type="button" onClick={() => onRemove(k)}>
          Remove <span class="visually-hidden">key {k.fingerprint}</span>
        </button>
      </td>
    </tr>
  );
}

/** The keyserver's keys; removing one makes the images it signed show an unknown key. */
export function Keys() {
  const keys = useApi<KeyInfo[]>('/api/keys');
  const { error, run, done } = useAction(keys.reload);
  const remove = (k: KeyInfo) => {
    if (!window.confirm(`Remove the key ${k.fingerprint}? Images it signed no longer verify and show an unknown key.`)) return;
    void run(() => api(`/api/keys/${enc(k.fingerprint)}`, { method: 'DELETE' }), `Key ${k.fingerprint} removed; the images it signed are being checked again.`);
  };
  return (
    <>
      <h2>Keys</h2>
      <ErrorNote error={error ?? keys.error} />
      <Done text={done} />
      {keys.loading && <Loading />}
      {keys.data?.length === 0 && <p>The keyserver holds no keys.</p>}
      {!!keys.data?.length && (
        <table class="stacked">
          <thead>
            <tr>
              {COLUMNS.map((c) => (
                <th scope="col" key={c}>
                  {c}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {keys.data.map((k) => (
              <KeyRow key={k.fingerprint} info={k} onRemove={remove} />
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
