import type { Command } from 'commander';
import { ShelfApiError } from '../../client/shelf-api.js';
import { confirm } from '../confirm.js';
import { action } from './admin-connection.js';

interface DeleteOpts {
  force?: boolean;
  yes?: boolean;
}

const print = (line: string) => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`${line}\n`);
const enc = encodeURIComponent;

/**
 * `shelf admin user|group delete NAME [--force] [--yes]`: says what goes, asks, deletes. The
 * server refuses (409) while the entity holds containers; `--force` deletes them too.
 */
function registerDelete(parent: Command, kind: 'user' | 'group', consequences: string): void {
  parent
    .command('delete <name>')
    .description(`delete a ${kind}: ${consequences}`)
    .option('--force', `also delete every container in the ${kind}'s entity (refused without it while there are any)`)
    .option('-y, --yes', 'do not ask for confirmation (needed when not on a terminal)')
    .action(
      action(async (api, name: string, opts: DeleteOpts) => {
        note(`This deletes ${kind} ${name} and its entity${opts.force ? ', with every container in it' : ''}: ${consequences}.`);
        await confirm(`Delete ${kind} ${name}?`, opts, `${kind} ${name}: not deleted`);
        const path = `api/${kind}s/${enc(name)}${opts.force ? '?force=true' : ''}`;
        const { containersDeleted } = await api.call<{ containersDeleted: number }>('DELETE', path).catch((err: unknown) => {
          if (err instanceof ShelfApiError && err.status === 409 && !opts.force && /still holds/.test(err.message)) {
            throw new ShelfApiError(409, `${err.message} (--force)`);
          }
          throw err;
        });
        print(`deleted ${kind} ${name}${containersDeleted ? ` and ${containersDeleted} container(s)` : ''}`);
      }),
    );
}

export function registerUserDelete(user: Command): void {
  registerDelete(user, 'user', 'its tokens and web sessions stop working at once, its memberships go; not yourself, nor the last enabled administrator');
}

export function registerGroupDelete(group: Command): void {
  registerDelete(group, 'group', 'its memberships go');
}

interface KeyRow {
  fingerprint: string;
  userIds: string[];
  owner: string | null;
  addedAt: string;
  revoked: boolean;
}

/** `shelf admin key list|remove`: the keyserver's keys. A removed key's images are verified again. */
export function registerKeyAdmin(admin: Command): void {
  const key = admin.command('key').description("keys on Shelf's keyserver");
  key
    .command('list')
    .description('list the keyserver keys')
    .action(
      action(async (api) => {
        print('FINGERPRINT\tOWNER\tADDED\tUSER IDS');
        for (const k of await api.call<KeyRow[]>('GET', 'api/keys')) {
          print(`${k.fingerprint}\t${k.owner ?? '-'}\t${k.addedAt}\t${k.userIds.join(', ')}${k.revoked ? ' (revoked)' : ''}`);
        }
      }),
    );
  key
    .command('remove <fingerprint>')
    .description('remove a key; images it signed are verified again and show an unknown key')
    .option('-y, --yes', 'do not ask for confirmation (needed when not on a terminal)')
    .action(
      action(async (api, fingerprint: string, opts: { yes?: boolean }) => {
        await confirm(`Remove key ${fingerprint}? Images it signed will no longer verify.`, opts, `key ${fingerprint}: not removed`);
        const { removed } = await api.call<{ removed: string }>('DELETE', `api/keys/${enc(fingerprint)}`);
        print(`removed key ${removed}`);
      }),
    );
}
