import { enc, formatSize, useApi } from '../api.js';
import { ErrorNote, Loading, PageTitle } from '../components.js';
import { useSession } from '../session.js';
import { SignInFirst } from './signin.js';

export interface QuotaRow {
  entity: string;
  role?: string;
  quotaTotal: number;
  quotaUsage: number;
}

export function QuotaMeter({ row }: { row: QuotaRow }) {
  const limited = row.quotaTotal > 0;
  const pct = limited ? Math.min(100, Math.round((row.quotaUsage / row.quotaTotal) * 100)) : 0;
  return (
    <div class="quota">
      <span>
        {formatSize(row.quotaUsage)} used of {limited ? formatSize(row.quotaTotal) : 'unlimited'}
      </span>
      {limited && <meter min={0} max={100} value={pct} aria-label={`${row.entity} quota used: ${pct}%`} />}
    </div>
  );
}

export function Account() {
  const { session } = useSession();
  const quotas = useApi<QuotaRow[]>(session ? '/api/me/quota' : null);
  if (!session) {
    return (
      <section>
        <PageTitle>Account</PageTitle>
        <SignInFirst />
      </section>
    );
  }
  return (
    <section>
      <PageTitle>{session.username}</PageTitle>
      <p>
        {session.admin ? 'Administrator. ' : ''}Manage your <a href="/tokens">access tokens</a>.
      </p>
      <h2>Storage</h2>
      {quotas.loading && <Loading />}
      <ErrorNote error={quotas.error} />
      {quotas.data?.length === 0 && <p>You have no entity yet.</p>}
      <ul class="cards">
        {quotas.data?.map((q) => (
          <li class="card" key={q.entity}>
            <h3>
              <a href={`/library/${enc(q.entity)}`}>{q.entity}</a> <span class="meta">({q.role})</span>
            </h3>
            <QuotaMeter row={q} />
          </li>
        ))}
      </ul>
    </section>
  );
}
