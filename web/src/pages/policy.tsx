import { useState } from 'preact/hooks';
import { api, useApi, type ApiError, type Loaded } from '../api.js';
import { Badge, ErrorNote } from '../components.js';

export interface Policy {
  scope: 'entity' | 'collection' | 'container';
  path: string;
  immutableTags: string[];
  keepNewest: number | null;
  dropUntaggedAfter: number | null;
  keepSigned: boolean;
}

export interface PolicyView {
  scope: Policy['scope'];
  path: string;
  own: Policy | null;
  effective: Policy | null;
}

/** As the server decides: `*` and `?` wildcards; `latest` only when named. */
export function isImmutable(policy: Policy | null | undefined, tag: string): boolean {
  if (!policy) return false;
  const wild = (p: string) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return policy.immutableTags.some((p) => p === tag || (tag !== 'latest' && wild(p).test(tag)));
}

const duration = (s: number) => (s % 86400 === 0 ? `${s / 86400}d` : s % 3600 === 0 ? `${s / 3600}h` : s % 60 === 0 ? `${s / 60}m` : `${s}s`);

/** The retention rules of a policy in a few words. */
export function retentionSummary(p: Policy): string {
  const rules = [];
  if (p.keepNewest !== null) rules.push(`keeps the newest ${p.keepNewest} image${p.keepNewest === 1 ? '' : 's'}`);
  if (p.dropUntaggedAfter !== null) rules.push(`removes untagged images after ${duration(p.dropUntaggedAfter)}`);
  if (rules.length === 0) return 'none';
  return `${rules.join(', ')}; tagged images${p.keepSigned ? ' and verified-signed ones' : ''} are always kept`;
}

/** An immutable tag's mark beside its name: a padlock (drawn, so no emoji font is needed) and the word. */
export function LockBadge() {
  return (
    <Badge kind="plain">
      <svg class="lock" aria-hidden="true" focusable="false" viewBox="0 0 16 16" width="11" height="11">
        <path d="M4.5 7V5a3.5 3.5 0 0 1 7 0v2" fill="none" stroke="currentColor" stroke-width="1.6" />
        <rect x="2.5" y="7" width="11" height="8" rx="1.5" fill="currentColor" />
      </svg>{' '}
      immutable
    </Badge>
  );
}

/** The policy in force at a scope, and, for its owners, a form to set or clear the scope's own. */
export function PolicyPanel({ path, policy, canEdit }: { path: string; policy: Loaded<PolicyView>; canEdit: boolean }) {
  const view = policy.data;
  if (!view) return null;
  const p = view.effective;
  return (
    <section class="policy" aria-labelledby="policy-heading">
      <h2 id="policy-heading">Tag policy</h2>
      {p ? (
        <dl class="facts">
          <dt>Immutable tags</dt>
          <dd>{p.immutableTags.length ? p.immutableTags.join(', ') : 'none'}</dd>
          <dt>Retention</dt>
          <dd>{retentionSummary(p)}</dd>
          <dt>Set on</dt>
          <dd>
            {p.scope} {p.path}
          </dd>
        </dl>
      ) : (
        <p class="meta">No policy: tags move freely and nothing is removed by retention.</p>
      )}
      {canEdit && <PolicyForm path={path} view={view} onChanged={policy.reload} />}
    </section>
  );
}

function PolicyForm({ path, view, onChanged }: { path: string; view: PolicyView; onChanged: () => void }) {
  const [error, setError] = useState<ApiError | null>(null);
  const [status, setStatus] = useState('');
  const own = view.own;
  const call = async (method: 'PUT' | 'DELETE', body?: unknown) => {
    try {
      await api(`/api/policies/${path}`, { method, body });
      setError(null);
      setStatus(method === 'PUT' ? 'Policy saved.' : 'Policy cleared.');
      onChanged();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  const save = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const text = (name: string) => form.get(name)?.toString().trim() ?? '';
    void call('PUT', {
      immutableTags: text('immutableTags') ? text('immutableTags').split(',') : [],
      keepNewest: text('keepNewest') ? Number(text('keepNewest')) : null,
      dropUntaggedAfter: text('dropUntaggedAfter') || null,
      keepSigned: form.get('keepSigned') === 'on',
    });
  };
  return (
    <details>
      <summary>Edit the policy of this {view.scope}</summary>
      <form class="stack policy-form" onSubmit={save}>
        <label for="policy-immutable">Immutable tags (patterns, comma-separated; * matches all but latest)</label>
        <input id="policy-immutable" name="immutableTags" type="text" defaultValue={own?.immutableTags.join(',') ?? ''} placeholder="v*,stable" />
        <label for="policy-keep">Keep the newest N images (empty: all)</label>
        <input id="policy-keep" name="keepNewest" type="number" min={1} defaultValue={own?.keepNewest === null || !own ? '' : String(own.keepNewest)} />
        <label for="policy-drop">Remove untagged images after (e.g. 30d, 12h; empty: never)</label>
        <input id="policy-drop" name="dropUntaggedAfter" type="text" defaultValue={own?.dropUntaggedAfter == null ? '' : duration(own.dropUntaggedAfter)} />
        <div class="row">
          <input id="policy-signed" name="keepSigned" type="checkbox" defaultChecked={own?.keepSigned ?? false} />
          <label for="policy-signed">Never remove images with a verified signature</label>
        </div>
        <div class="row">
          <button type="submit">Save policy</button>
          {own && (
            <button type="button" onClick={() => void call('DELETE')}>
              Clear this {view.scope}'s policy
            </button>
          )}
        </div>
        {status && <p role="status">{status}</p>}
        <ErrorNote error={error} />
      </form>
    </details>
  );
}

/** The policy panel of a scope that loads its own policy (entity and collection pages). */
export function ScopePolicy({ path, canEdit }: { path: string; canEdit: boolean }) {
  const policy = useApi<PolicyView>(`/api/policies/${path}`);
  return <PolicyPanel path={path} policy={policy} canEdit={canEdit} />;
}
