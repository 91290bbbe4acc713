import { useState } from 'preact/hooks';
import { api, enc, formatDate, useApi, type ApiError } from '../api.js';
import { Badge, Copyable, ErrorNote, Loading, PageTitle } from '../components.js';
import { useSession } from '../session.js';
import { SignInFirst } from './signin.js';

const EVENTS = ['push', 'pull', 'delete', 'tag', 'signature'] as const;

interface Hook {
  id: string;
  entity: string | null;
  url: string;
  events: string[];
  createdAt: string;
}

interface Delivery {
  id: string;
  event: string;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: string;
  nextAttemptAt: string;
  deliveredAt: string | null;
  payload: { repository?: string };
}

/** Webhooks of one entity the caller owns, or (administrators, no entity) every hook. */
export function WebhooksPage() {
  const { session } = useSession();
  const [entity, setEntity] = useState(session?.username ?? '');
  if (!session) {
    return (
      <section>
        <PageTitle>Webhooks</PageTitle>
        <SignInFirst />
      </section>
    );
  }
  return (
    <section>
      <PageTitle>Webhooks</PageTitle>
      <p>
        Shelf posts each push, pull, delete, tag and signature change of an entity to these URLs, signed with the hook's secret (header <code>X-Shelf-Signature</code>).
      </p>
      <form
        class="stack inline-form"
        aria-label="Choose the entity"
        onSubmit={(e) => {
          e.preventDefault();
          setEntity(String(new FormData(e.currentTarget as HTMLFormElement).get('entity') ?? '').trim());
        }}
      >
        <label for="hook-entity">Entity</label>
        <input id="hook-entity" name="entity" defaultValue={entity} placeholder={session.admin ? 'empty: every entity' : session.username} />
        <button type="submit">Show</button>
      </form>
      <HooksOf key={entity} entity={entity} admin={session.admin} />
    </section>
  );
}

function HooksOf({ entity, admin }: { entity: string; admin: boolean }) {
  const list = useApi<{ webhooks: Hook[] }>(entity ? `/api/webhooks?entity=${enc(entity)}` : admin ? '/api/webhooks' : null);
  const [created, setCreated] = useState<{ url: string; secret: string } | null>(null);
  const [notice, setNotice] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const events = EVENTS.filter((ev) => form.get(`event-${ev}`) === 'on');
    try {
      const hook = await api<{ url: string; secret: string }>('/api/webhooks', { method: 'POST', body: { entity: entity || null, url: String(form.get('url') ?? '').trim(), events } });
      setCreated(hook);
      setError(null);
      setNotice('');
      list.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const remove = async (hook: Hook) => {
    if (!window.confirm(`Remove the webhook to ${hook.url}? Its deliveries are forgotten.`)) return;
    try {
      await api(`/api/webhooks/${enc(hook.id)}`, { method: 'DELETE' });
      setNotice(`Webhook to ${hook.url} removed.`);
      list.reload();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const hooks = list.data?.webhooks ?? [];
  return (
    <>
      <form class="stack" onSubmit={create} aria-labelledby="new-hook">
        <h2 id="new-hook">New webhook {entity ? `for ${entity}` : 'for every entity'}</h2>
        <label for="hook-url">URL</label>
        <input id="hook-url" name="url" type="url" required placeholder="https://ci.example.org/shelf" />
        <fieldset>
          <legend>Events</legend>
          {EVENTS.map((ev) => (
            <label key={ev} class="check">
              <input type="checkbox" name={`event-${ev}`} defaultChecked={ev !== 'pull'} /> {ev}
            </label>
          ))}
        </fieldset>
        <button type="submit">Add webhook</button>
      </form>
      <ErrorNote error={error} />
      {created && (
        <div class="new-token" role="status">
          <p>
            Webhook to <strong>{created.url}</strong> added. Copy its secret now: it is shown only once.
          </p>
          <Copyable label="webhook secret" text={created.secret} />
        </div>
      )}
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <h2>Webhooks</h2>
      {list.loading && <Loading />}
      <ErrorNote error={list.error} />
      {list.data && hooks.length === 0 && <p>No webhooks yet.</p>}
      {hooks.length > 0 && (
        <table class="hooks stacked">
          <thead>
            <tr>
              <th scope="col">URL</th>
              <th scope="col">Entity</th>
              <th scope="col">Events</th>
              <th scope="col">Added</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {hooks.map((h) => (
              <tr key={h.id}>
                <th scope="row" class="wrap">
                  {h.url}
                </th>
                <td data-label="Entity">{h.entity ?? 'every entity'}</td>
                <td data-label="Events">{h.events.join(', ')}</td>
                <td data-label="Added">{formatDate(h.createdAt)}</td>
                <td data-label="Actions">
                  <button type="button" aria-expanded={open === h.id} onClick={() => setOpen(open === h.id ? null : h.id)} aria-label={`Deliveries to ${h.url}`}>
                    Deliveries
                  </button>{' '}
                  <button type="button" onClick={() => remove(h)} aria-label={`Remove the webhook to ${h.url}`}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {open && <Deliveries id={open} url={hooks.find((h) => h.id === open)?.url ?? ''} />}
    </>
  );
}

const STATE: Record<Delivery['state'], 'ok' | 'warn' | 'bad'> = { delivered: 'ok', pending: 'warn', failed: 'bad' };

function Deliveries({ id, url }: { id: string; url: string }) {
  const log = useApi<{ deliveries: Delivery[] }>(`/api/webhooks/${enc(id)}/deliveries`);
  const rows = log.data?.deliveries ?? [];
  return (
    <section aria-labelledby="deliveries-heading">
      <h2 id="deliveries-heading">Deliveries to {url}</h2>
      <button type="button" onClick={log.reload}>
        Refresh
      </button>
      {log.loading && <Loading />}
      <ErrorNote error={log.error} />
      {log.data && rows.length === 0 && <p>Nothing delivered yet.</p>}
      {rows.length > 0 && (
        <table class="deliveries stacked">
          <thead>
            <tr>
              <th scope="col">Event</th>
              <th scope="col">Repository</th>
              <th scope="col">State</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last answer</th>
              <th scope="col">Time</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((d) => (
              <tr key={d.id}>
                <th scope="row">{d.event}</th>
                <td data-label="Repository">{d.payload.repository ?? ''}</td>
                <td data-label="State">
                  <Badge kind={STATE[d.state]}>{d.state}</Badge>
                </td>
                <td data-label="Attempts">{d.attempts}</td>
                <td data-label="Last answer">{d.lastStatus ?? d.lastError ?? '—'}</td>
                <td data-label="Time">{formatDate(d.deliveredAt ?? d.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
