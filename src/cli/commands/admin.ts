import type { Command } from 'commander';
import { parseByteSize } from '../../config/schema.js';
import { CliError } from '../errors.js';
import { promptSecrets, readStdin } from '../secrets.js';
import { action } from './admin-connection.js';
import { registerGroupDelete, registerKeyAdmin, registerUserDelete } from './admin-removals.js';
import { registerEnable, registerMaintenance, registerSecret } from './maintenance.js';
import { registerConfigCheck } from './config-check.js';
import { registerBackup } from './backup.js';

/** A new password from standard input, or typed twice on a terminal. */
async function newPassword(opts: { passwordStdin?: boolean }): Promise<string> {
  if (opts.passwordStdin) return readStdin();
  if (!process.stdin.isTTY) throw new CliError('give --password-stdin, or run on a terminal to be asked', 2);
  const [first, again] = await promptSecrets(['New password: ', 'Again: ']);
  if (first !== again) throw new CliError('the passwords differ; nothing changed', 1);
  return first!;
}

const print = (line: string) => process.stdout.write(`${line}\n`);
const enc = encodeURIComponent;

export function registerAdmin(program: Command): void {
  const admin = program
    .command('admin')
    .description('administer a running Shelf server')
    .option('--url <url>', 'server URL (or SHELF_URL; default: the remote in use)')
    .option('--token <token>', 'an administrator API token (or SHELF_TOKEN; default: the token stored by shelf remote login)');

  const user = admin.command('user').description('local user accounts');
  user
    .command('add <name>')
    .description('create a user; with --password-stdin it can sign in to the web UI, else it uses tokens only')
    .option('--password-stdin', 'read the password from standard input')
    .option('--admin', 'make the user an administrator')
    .action(
      action(async (api, name: string, opts: { passwordStdin?: boolean; admin?: boolean }) => {
        const password = opts.passwordStdin ? await readStdin() : undefined;
        await api.call('POST', 'api/users', { username: name, password, admin: !!opts.admin });
        print(`created user ${name}`);
      }),
    );
  user
    .command('list')
    .description('list users')
    .action(
      action(async (api) => {
        const users = await api.call<Array<{ username: string; isAdmin: boolean; disabled: boolean; authSource: string; createdAt: string }>>('GET', 'api/users');
        print('USERNAME\tADMIN\tDISABLED\tSOURCE\tCREATED');
        for (const u of users) print(`${u.username}\t${u.isAdmin ? 'yes' : 'no'}\t${u.disabled ? 'yes' : 'no'}\t${u.authSource}\t${u.createdAt}`);
      }),
    );
  user
    .command('passwd <name>')
    .description('set the password a user signs in to the web UI with (asked twice on a terminal)')
    .option('--password-stdin', 'read the password from standard input')
    .action(
      action(async (api, name: string, opts: { passwordStdin?: boolean }) => {
        await api.call('PUT', `api/users/${enc(name)}/password`, { password: await newPassword(opts) });
        print(`password of ${name} set`);
      }),
    );
  user
    .command('disable <name>')
    .description("disable a user (a disabled user's tokens stop working at once); not yourself, nor the last enabled administrator")
    .action(
      action(async (api, name: string) => {
        await api.call('POST', `api/users/${enc(name)}/disable`);
        print(`disabled user ${name}`);
      }),
    );
  registerEnable(user);
  registerUserDelete(user);
  user
    .command('admin <name>')
    .description('make a user an administrator, or with --revoke take the rights away (not your own, nor the last one\'s)')
    .option('--revoke', 'remove the administrator rights')
    .action(
      action(async (api, name: string, opts: { revoke?: boolean }) => {
        await api.call('PUT', `api/users/${enc(name)}/admin`, { admin: !opts.revoke });
        print(opts.revoke ? `${name} is no longer an administrator` : `${name} is an administrator`);
      }),
    );

  const token = admin.command('token').description('API tokens');
  token
    .command('create <user>')
    .description('create an API token for a user; the token is the last line printed')
    .option('--name <name>', 'a name for the token', 'admin-created')
    .option('--expires <time>', 'expiry, RFC 3339')
    .action(
      action(async (api, name: string, opts: { name: string; expires?: string }) => {
        const { token: secret } = await api.call<{ token: string }>('POST', `api/users/${enc(name)}/tokens`, { name: opts.name, expiresAt: opts.expires });
        print(`token for ${name} (shown once):`);
        print(secret);
      }),
    );
  token
    .command('revoke-all <user>')
    .description("revoke every token of a user")
    .action(
      action(async (api, name: string) => {
        const { revoked } = await api.call<{ revoked: number }>('POST', `api/users/${enc(name)}/tokens/revoke-all`);
        print(`revoked ${revoked} token(s) of ${name}`);
      }),
    );

  const group = admin.command('group').description('groups and their members');
  group
    .command('add <name>')
    .description('create a group (and its entity)')
    .action(
      action(async (api, name: string) => {
        await api.call('POST', 'api/groups', { name });
        print(`created group ${name}`);
      }),
    );
  group
    .command('member <group> <user> [role]')
    .description('set a member\'s role (owner, writer, reader), or remove them with --remove')
    .option('--remove', 'remove the member')
    .action(
      action(async (api, groupName: string, name: string, role: string | undefined, opts: { remove?: boolean }) => {
        if (opts.remove) {
          await api.call('DELETE', `api/groups/${enc(groupName)}/members/${enc(name)}`);
          print(`removed ${name} from ${groupName}`);
          return;
        }
        if (!role) throw new CliError('give a role: owner, writer or reader (or --remove)', 2);
        await api.call('PUT', `api/groups/${enc(groupName)}/members/${enc(name)}`, { role });
        print(`${name} is ${role} of ${groupName}`);
      }),
    );
  registerGroupDelete(group);
  group
    .command('list')
    .description('list groups and members')
    .action(
      action(async (api) => {
        for (const g of await api.call<Array<{ name: string; members: Array<{ username: string; role: string }> }>>('GET', 'api/groups')) {
          print(`${g.name}\t${g.members.map((m) => `${m.username}:${m.role}`).join(',')}`);
        }
      }),
    );

  registerKeyAdmin(admin);

  const quota = admin.command('quota').description('byte quotas of users and groups');
  quota
    .command('set <name> <size>')
    .description('set the quota of a user or group entity (e.g. 1MiB, 10GiB; 0 = unlimited)')
    .action(
      action(async (api, name: string, size: string) => {
        const bytes = parseByteSize(size);
        if (bytes === null) throw new CliError(`not a size: ${size} (use e.g. 1MiB, 10GiB, 0)`, 2);
        const r = await api.call<{ quotaTotal: number; quotaUsage: number }>('PUT', `api/quotas/${enc(name)}`, { bytes });
        print(`${name}: quota ${r.quotaTotal} bytes, using ${r.quotaUsage}`);
      }),
    );
  quota
    .command('recount')
    .description('recount the bytes used by every entity')
    .action(
      action(async (api) => {
        print('ENTITY\tUSED\tQUOTA');
        for (const r of await api.call<Array<{ entity: string; quotaUsage: number; quotaTotal: number }>>('GET', 'api/quotas')) {
          print(`${r.entity}\t${r.quotaUsage}\t${r.quotaTotal || 'unlimited'}`);
        }
      }),
    );

  registerMaintenance(admin);
  registerSecret(admin);
  registerConfigCheck(admin);
  registerBackup(admin);
  registerPolicy(admin);

  admin
    .command('audit')
    .description('read the audit trail, newest first: every write and every sign-in')
    .option('--user <name>', 'only entries of this user')
    .option('--action <action>', 'only this action or its first word (e.g. DELETE, sign-in, sign-in-failed)')
    .option('--target <prefix>', 'only targets starting with this (e.g. /v1/images/alice/)')
    .option('--since <time>', 'from this time on (RFC 3339)')
    .option('--until <time>', 'up to this time (RFC 3339)')
    .option('--limit <n>', 'at most this many entries', '100')
    .option('--json', 'one JSON object a line')
    .action(
      action(async (api, opts: { user?: string; action?: string; target?: string; since?: string; until?: string; limit: string; json?: boolean }) => {
        const wanted = Number(opts.limit);
        if (!Number.isInteger(wanted) || wanted < 1) throw new CliError('--limit must be a positive whole number', 2);
        type Page = { items: Array<{ at: string; username: string | null; action: string; target: string; ip: string | null; requestId: string | null }>; next: string | null };
        if (!opts.json) print('TIME\tUSER\tACTION\tTARGET\tADDRESS');
        let cursor: string | null = null;
        let shown = 0;
        do {
          const q = new URLSearchParams();
          for (const key of ['user', 'action', 'target', 'since', 'until'] as const) if (opts[key]) q.set(key, opts[key]);
          q.set('limit', String(Math.min(wanted - shown, 1000)));
          if (cursor) q.set('cursor', cursor);
          const page: Page = await api.call<Page>('GET', `api/admin/audit?${q.toString()}`);
          for (const e of page.items) {
            print(opts.json ? JSON.stringify(e) : `${e.at}\t${e.username ?? '-'}\t${e.action}\t${e.target}\t${e.ip ?? '-'}`);
          }
          shown += page.items.length;
          cursor = page.next;
        } while (cursor && shown < wanted);
      }),
    );

  admin
    .command('visibility <path> <visibility>')
    .description('make ENTITY[/COLLECTION[/CONTAINER]] private or public')
    .action(
      action(async (api, path: string, visibility: string) => {
        if (visibility !== 'private' && visibility !== 'public') throw new CliError('visibility is private or public', 2);
        await api.call('PUT', `api/visibility/${path.split('/').map(enc).join('/')}`, { private: visibility === 'private' });
        print(`${path} is ${visibility}`);
      }),
    );
}

interface PolicyJson {
  scope: string;
  path: string;
  immutableTags: string[];
  keepNewest: number | null;
  dropUntaggedAfter: number | null;
  keepSigned: boolean;
}
interface PolicyViewJson {
  scope: string;
  path: string;
  own: PolicyJson | null;
  effective: PolicyJson | null;
}

const seconds = (n: number) => (n % 86400 === 0 ? `${n / 86400}d` : n % 3600 === 0 ? `${n / 3600}h` : n % 60 === 0 ? `${n / 60}m` : `${n}s`);

/** One policy as lines a person reads. */
function describePolicy(p: PolicyJson): string[] {
  return [
    `immutable tags: ${p.immutableTags.length ? p.immutableTags.join(', ') : 'none'}`,
    `keep newest: ${p.keepNewest ?? 'all'}`,
    `drop untagged after: ${p.dropUntaggedAfter === null ? 'never' : seconds(p.dropUntaggedAfter)}`,
    `keep signed: ${p.keepSigned ? 'yes' : 'no'}`,
  ];
}

const scopePath = (ref: string) => ref.replace(/^library:\/\//, '').replace(/^\/+|\/+$/g, '');
const policyUrl = (ref: string) => `api/policies/${scopePath(ref).split('/').map(enc).join('/')}`;

function printView(v: PolicyViewJson, json?: boolean): void {
  if (json) {
    print(JSON.stringify(v));
    return;
  }
  print(`${v.scope} ${v.path}: ${v.own ? 'own policy' : 'no own policy'}`);
  if (!v.effective) {
    print('in force: none');
    return;
  }
  print(`in force (from ${v.effective.scope} ${v.effective.path}):`);
  for (const line of describePolicy(v.effective)) print(`  ${line}`);
}

/** `shelf admin policy set|get|clear REF`: tag immutability and retention of an entity, collection or container. */
function registerPolicy(admin: Command): void {
  const policy = admin.command('policy').description('immutable tags and retention of ENTITY[/COLLECTION[/CONTAINER]] (the nearest scope with a policy decides)');
  policy
    .command('set <ref>')
    .description("set (replace) a scope's policy; options left out are unset")
    .option('--immutable-tags <patterns>', 'comma-separated tag patterns that may not move once set (* and ?; "*" spares latest unless named), or "true"/"false"')
    .option('--keep-newest <n>', 'keep the newest N images of each container (by push time)')
    .option('--drop-untagged-after <duration>', 'remove untagged images older than this (e.g. 30d, 12h, 3600)')
    .option('--keep-signed', 'never remove an image with a verified signature')
    .option('--json', 'print the answer as JSON')
    .action(
      action(async (api, ref: string, opts: { immutableTags?: string; keepNewest?: string; dropUntaggedAfter?: string; keepSigned?: boolean; json?: boolean }) => {
        const body: Record<string, unknown> = { keepSigned: !!opts.keepSigned };
        if (opts.immutableTags !== undefined) body.immutableTags = opts.immutableTags === 'true' ? true : opts.immutableTags === 'false' ? false : opts.immutableTags.split(',');
        if (opts.keepNewest !== undefined) {
          const n = Number(opts.keepNewest);
          if (!Number.isInteger(n) || n < 1) throw new CliError('--keep-newest is a whole number, 1 or more', 2);
          body.keepNewest = n;
        }
        if (opts.dropUntaggedAfter !== undefined) body.dropUntaggedAfter = /^\d+$/.test(opts.dropUntaggedAfter) ? Number(opts.dropUntaggedAfter) : opts.dropUntaggedAfter;
        printView(await api.call<PolicyViewJson>('PUT', policyUrl(ref), body), opts.json);
      }),
    );
  const readOrClear: Array<[string, string, 'GET' | 'DELETE']> = [
    ['get <ref>', 'show the policy of a scope and the one in force there', 'GET'],
    ['clear <ref>', "remove a scope's own policy (the enclosing scope's applies)", 'DELETE'],
  ];
  for (const [usage, description, method] of readOrClear) {
    policy
      .command(usage)
      .description(description)
      .option('--json', 'print the answer as JSON')
      .action(
        action(async (api, ref: string, opts: { json?: boolean }) => {
          printView(await api.call<PolicyViewJson>(method, policyUrl(ref)), opts.json);
        }),
      );
  }
}
