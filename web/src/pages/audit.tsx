import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { enc, formatDate, useApi } from '../api.js';
import { ErrorNote, Loading } from '../components.js';

interface AuditRecord {
  id: string;
  at: string;
  username: string | null;
  action: string;
  target: string;
  ip: string | null;
  requestId: string | null;
}

const FILTERS = [
  ['user', 'User'],
  ['action', 'Action (e.g. DELETE, sign-in-failed)'],
  ['target', 'Target starts with'],
  ['since', 'Since (e.g. 2026-01-31T00:00:00Z)'],
  ['until', 'Until'],
] as const;

/** The audit trail, newest first, filtered, one page at a time (admin only, from /api/admin/audit). */
export function AuditLog() {
  const [filters, setFilters] = useState<Record<string, string>>({});
  const [cursors, setCursors] = useState<string[]>([]);
  const query = Object.entries({ ...filters, limit: '50', cursor: cursors[cursors.length - 1] ?? '' })
    .filter(([, v]) => v)
    .map(([k, v]) => `${k}=${enc(v)}`)
    .join('&');
  const page = useApi<{ items: AuditRecord[]; next: string | null }>(`/api/admin/audit?${query}`);
  const apply = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    setFilters(Object.fromEntries(FILTERS.map(([name]) => [name, String(form.get(name) ?? '').trim()])));
    setCursors([]);
  };
  return (
    <>
      <h2>Audit log</h2>
      <form class="stack inline-form" onSubmit={apply} aria-label="Filter the audit log">
        {FILTERS.map(([name, label]) => (
          <Fragment key={name}>
            <label for={`audit-${name}`}>{label}</label>
            <input id={`audit-${name}`} name={name} defaultValue={filters[name] ?? ''} />
          </Fragment>
        ))}
        <button type="submit">Filter</button>
      </form>
      <ErrorNote error={page.error} />
      {page.loading && !page.data ? (
        <Loading />
      ) : (
        <table class="audit">
          <caption class="visually-hidden">Audit entries, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">User</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">From</th>
            </tr>
          </thead>
          <tbody>
            {page.data?.items.map((r) => (
              <tr key={r.id}>
                <td title={r.at}>{formatDate(r.at)}</td>
                <td>{r.username ?? '(anonymous)'}</td>
                <td>{r.action}</td>
                <td>
                  <code>{r.target}</code>
                </td>
                <td>{r.ip ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page.data && page.data.items.length === 0 && <p>No entries match.</p>}
      <p>
        {cursors.length > 0 && (
          <button type="button" onClick={() => setCursors(cursors.slice(0, -1))}>
            Newer entries
          </button>
        )}{' '}
        {page.data?.next && (
          <button type="button" onClick={() => setCursors([...cursors, page.data!.next!])}>
            Older entries
          </button>
        )}
      </p>
    </>
  );
}
