import { useRoute } from 'preact-iso';
import { api, enc, formatDate, parseSizeInput, useApi } from '../api.js';
import { ErrorNote, Loading, PageTitle } from '../components.js';
import { useSession } from '../session.js';
import { QuotaMeter, type QuotaRow } from './account.js';
import { AuditLog } from './audit.js';
import { Done, deleteWithEntity, formValues, useAction } from './admin-actions.js';
import { Keys } from './admin-keys.js';
import { Mirror } from './admin-mirror.js';

interface UserInfo {
  id: string;
  username: string;
  isAdmin: boolean;
  disabled: boolean;
  createdAt: string;
  authSource: string;
}

interface GroupInfo {
  id: string;
  name: string;
  members: Array<{ username: string; role: string }>;
}

function Users() {
  const users = useApi<UserInfo[]>('/api/users');
  const { session } = useSession();
  const { error, run, done } = useAction(users.reload);
  const add = async (e: Event) => {
    const { form, get } = formValues(e);
    const body = { username: get('username'), password: get('password') || undefined, admin: get('admin') === 'on' };
    if (await run(() => api('/api/users', { method: 'POST', body }), `User ${body.username} added.`)) form.reset();
  };
  const toggle = (u: UserInfo) => {
    if (!u.disabled && !window.confirm(`Disable ${u.username}? Their tokens and sessions stop working at once.`)) return;
    void run(() => api(`/api/users/${enc(u.username)}/${u.disabled ? 'enable' : 'disable'}`, { method: 'POST' }), `${u.username} ${u.disabled ? 'enabled' : 'disabled'}.`);
  };
  const toggleAdmin = (u: UserInfo) => {
    if (u.isAdmin && !window.confirm(`Remove the administrator rights of ${u.username}? They lose the admin pages and API at once.`)) return;
    const success = u.isAdmin ? `${u.username} is no longer an administrator.` : `${u.username} is an administrator.`;
    void run(() => api(`/api/users/${enc(u.username)}/admin`, { method: 'PUT', body: { admin: !u.isAdmin } }), success);
  };
  const remove = (u: UserInfo) => {
    if (!window.confirm(`Delete the user ${u.username}? Their tokens and sessions stop working at once, their memberships go, and so does their entity ${u.username}.`)) return;
    void run(() => deleteWithEntity(`/api/users/${enc(u.username)}`, u.username), `User ${u.username} deleted.`);
  };
  const resetPassword = (u: UserInfo) => {
    const password = window.prompt(`New password for ${u.username} (8 or more characters):`);
    if (password) void run(() => api(`/api/users/${enc(u.username)}/password`, { method: 'PUT', body: { password } }), `Password of ${u.username} set.`);
  };
  return (
    <>
      <h2>Users</h2>
      <form class="stack inline-form" onSubmit={add} aria-label="Add a user">
        <label for="new-user">User name</label>
        <input id="new-user" name="username" required />
        <label for="new-password">Password (8 or more characters; empty for directory accounts)</label>
        <input id="new-password" name="password" type="password" autocomplete="new-password" minLength={8} />
        <label class="check">
          <input type="checkbox" name="admin" /> Administrator
        </label>
        <button type="submit">Add user</button>
      </form>
      <ErrorNote error={error ?? users.error} />
      <Done text={done} />
      {users.loading && <Loading />}
      <div>
        <table class="stacked">
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Source</th>
              <th scope="col">Created</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {users.data?.map((u) => (
              <tr key={u.id}>
                <th scope="row">
                  {u.username}
                  {u.isAdmin ? ' (admin)' : ''}
                </th>
                <td data-label="Source">{u.authSource}</td>
                <td data-label="Created">{formatDate(u.createdAt)}</td>
                <td data-label="State">
                  {u.disabled ? 'disabled ' : 'active '}
                  {u.username === session?.username ? (
                    <span class="meta">(you)</span>
                  ) : (
                    <>
                      <button type="button" onClick={() => toggle(u)}>
                        {u.disabled ? 'Enable' : 'Disable'} <span class="visually-hidden">{u.username}</span>
                      </button>{' '}
                      <button type="button" onClick={() => toggleAdmin(u)}>
                        {u.isAdmin ? 'Remove admin' : 'Make admin'} <span class="visually-hidden">{u.username}</span>
                      </button>{' '}
                      <button type="button" onClick={() => remove(u)}>
                        Delete <span class="visually-hidden">user {u.username}</span>
                      </button>
                    </>
                  )}{' '}
                  {u.authSource === 'local' && (
                    <button type="button" onClick={() => resetPassword(u)}>
                      Set password <span class="visually-hidden">of {u.username}</span>
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function Groups() {
  const groups = useApi<GroupInfo[]>('/api/groups');
  const { error, run, done } = useAction(groups.reload);
  const add = async (e: Event) => {
    const { form, get } = formValues(e);
    if (await run(() => api('/api/groups', { method: 'POST', body: { name: get('name') } }), `Group ${get('name')} added.`)) form.reset();
  };
  const remove = (g: GroupInfo) => {
    if (!window.confirm(`Delete the group ${g.name}? Its ${g.members.length} membership(s) go, and so does its entity ${g.name}.`)) return;
    void run(() => deleteWithEntity(`/api/groups/${enc(g.name)}`, g.name), `Group ${g.name} deleted.`);
  };
  const setMember = async (e: Event) => {
    const { form, get } = formValues(e);
    const path = `/api/groups/${enc(get('group'))}/members/${enc(get('user'))}`;
    if (await run(() => api(path, { method: 'PUT', body: { role: get('role') } }))) form.reset();
  };
  return (
    <>
      <h2>Groups</h2>
      <form class="stack inline-form" onSubmit={add} aria-label="Add a group">
        <label for="new-group">Group name</label>
        <input id="new-group" name="name" required />
        <button type="submit">Add group</button>
      </form>
      <form class="stack inline-form" onSubmit={setMember} aria-label="Set a member's role">
        <label for="member-group">Group</label>
        <select id="member-group" name="group" required>
          {groups.data?.map((g) => (
            <option key={g.id}>{g.name}</option>
          ))}
        </select>
        <label for="member-user">User</label>
        <input id="member-user" name="user" required />
        <label for="member-role">Role</label>
        <select id="member-role" name="role">
          <option>reader</option>
          <option>writer</option>
          <option>owner</option>
        </select>
        <button type="submit">Set role</button>
      </form>
      <ErrorNote error={error ?? groups.error} />
      <Done text={done} />
      {groups.loading && <Loading />}
      <ul class="cards">
        {groups.data?.map((g) => (
          <li class="card" key={g.id}>
            <h3>{g.name}</h3>
            <button type="button" onClick={() => remove(g)}>
              Delete <span class="visually-hidden">group {g.name}</span>
            </button>
            {g.members.length === 0 ? (
              <p>No members.</p>
            ) : (
              <ul>
                {g.members.map((m) => (
                  <li key={m.username}>
                    {m.username} ({m.role}){' '}
                    <button type="button" onClick={() => run(() => api(`/api/groups/${enc(g.name)}/members/${enc(m.username)}`, { method: 'DELETE' }))}>
                      Remove <span class="visually-hidden">{m.username} from {g.name}</span>
                    </button>
                  </li>
                ))}
              </ul>
            )}
          </li>
        ))}
      </ul>
    </>
  );
}

function Quotas() {
  const quotas = useApi<QuotaRow[]>('/api/quotas');
  const { error, run } = useAction(quotas.reload);
  const set = async (e: Event) => {
    const { form, get } = formValues(e);
    const size = get('size');
    if (await run(() => api(`/api/quotas/${enc(get('entity'))}`, { method: 'PUT', body: { size: parseSizeInput(size) } }))) form.reset();
  };
  return (
    <>
      <h2>Quotas</h2>
      <form class="stack inline-form" onSubmit={set} aria-label="Set a quota">
        <label for="quota-entity">Entity</label>
        <select id="quota-entity" name="entity" required>
          {quotas.data?.map((q) => (
            <option key={q.entity}>{q.entity}</option>
          ))}
        </select>
        <label for="quota-size">Quota (e.g. 10GiB, 0 for unlimited)</label>
        <input id="quota-size" name="size" required />
        <button type="submit">Set quota</button>
      </form>
      <ErrorNote error={error ?? quotas.error} />
      {quotas.loading && <Loading />}
      <ul class="cards">
        {quotas.data?.map((q) => (
          <li class="card" key={q.entity}>
            <h3>
              <a href={`/library/${enc(q.entity)}`}>{q.entity}</a>
            </h3>
            <QuotaMeter row={q} />
          </li>
        ))}
      </ul>
    </>
  );
}

const SECTIONS = { users: Users, groups: Groups, keys: Keys, quotas: Quotas, mirror: Mirror, audit: AuditLog } as const;

export function Admin() {
  const { session } = useSession();
  const { params } = useRoute();
  const section = (params.section ?? 'users') as keyof typeof SECTIONS;
  const Section = SECTIONS[section] ?? Users;
  if (!session?.admin) {
    return (
      <section>
        <PageTitle>Administration</PageTitle>
        <p>Only administrators may see this page.</p>
      </section>
    );
  }
  return (
    <section>
      <PageTitle>Administration</PageTitle>
      <nav aria-label="Administration" class="tabs">
        {Object.keys(SECTIONS).map((s) => (
          <a key={s} href={`/admin/${s}`} aria-current={s === section ? 'page' : undefined}>
            {s[0]!.toUpperCase() + s.slice(1)}
          </a>
        ))}
      </nav>
      <Section />
    </section>
  );
}
