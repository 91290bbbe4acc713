import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AuditRecord } from '../../src/registry/accounts/audit.js';
import { shelfCli, type ShelfCli } from '../helpers/cli.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');
const oras = path.join(CLIENTS, 'orasclient');

type Entry = AuditRecord;

for (const db of DB_KINDS) {
  describe(`the audit trail, readable (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let cli: ShelfCli;
    const audit = async (query: string, token = ADMIN_TOKEN) => {
      const res = await api(shelf, token)(`/api/admin/audit?${query}`);
      return { status: res.status, body: (await res.json()) as { data: { items: Entry[]; next: string | null } } };
    };

    before(async () => {
      shelf = await startShelf({ db });
      cli = await shelfCli();
      const password = 'Audit-Password-0123';
      assert.equal((await api(shelf)('/api/users', { method: 'POST', body: JSON.stringify({ username: 'carol', password }) })).status, 200);
      // Sign-ins through the web UI's endpoint: one good, two bad (a wrong password, an unknown user).
      assert.equal((await fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'carol', password }) })).status, 200);
      assert.equal((await fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'carol', password: 'nope-nope-nope' }) })).status, 401);
      assert.equal((await fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'mallory', password: 'guess-guess' }) })).status, 401);
      // Registry sign-ins: the real ORAS client with a good and a bad token.
      const host = new URL(shelf.url).host;
      const good = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'push', path.join(FIXTURES, 'minimal-arm64.sif'), `${host}/admin/audited/oras:v1`]);
      assert.equal(good.code, 0, good.stderr);
      const bad = await run(oras, ['--user', 'admin', '--pass', 'not-the-token-0000', 'push', path.join(FIXTURES, 'minimal-arm64.sif'), `${host}/admin/audited/oras:v2`]);
      assert.notEqual(bad.code, 0);
      // Library writes with the real client.
      const push = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', path.join(FIXTURES, 'minimal-amd64.sif'), 'admin/audited/lib:v1']);
      assert.equal(push.code, 0, push.stderr);
      const del = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'delete', 'admin/audited/lib:v1', '--arch', 'amd64']);
      assert.equal(del.code, 0, del.stderr);
    });
    after(async () => {
      await shelf?.stop();
    });

    test('sign-ins, good and bad, are recorded with the name tried and the source address', async () => {
      const ok = (await audit('action=sign-in&user=carol')).body.data.items;
      assert.equal(ok.length, 1);
      assert.equal(ok[0]!.target, '/api/login');
      assert.equal(ok[0]!.ip, '127.0.0.1');
      assert.match(ok[0]!.requestId!, /^[0-9a-f-]{36}$/);
      const failed = (await audit('action=sign-in-failed')).body.data.items;
      const byName = failed.map((e) => `${e.username}@${e.target}`).sort();
      assert.ok(byName.includes('carol@/api/login'));
      assert.ok(byName.includes('mallory@/api/login'));
      assert.ok(byName.includes('admin@/v2/token'), 'a registry client with a wrong token');
      assert.ok(failed.every((e) => e.ip === '127.0.0.1'));
      const registry = (await audit('action=sign-in&target=/v2/token&user=admin')).body.data.items;
      assert.ok(registry.length >= 1, 'registry token requests with good credentials are sign-ins');
    });

    test('writes of both protocols are recorded with the caller; filters by action and target prefix', async () => {
      const deletes = (await audit('action=DELETE')).body.data.items;
      assert.ok(deletes.some((e) => e.target.startsWith('/v1/images/admin/audited/lib') && e.username === 'admin'));
      const oci = (await audit('target=/v2/admin/audited/')).body.data.items;
      assert.ok(oci.some((e) => e.action === 'PUT 201' && e.target === '/v2/admin/audited/oras/manifests/v1'));
      assert.ok(oci.every((e) => e.target.startsWith('/v2/admin/audited/')));
      assert.ok(oci.some((e) => e.target.endsWith('/blobs/uploads/…')), 'upload sessions are recorded…');
      assert.ok(!oci.some((e) => /\/blobs\/uploads\/[^…]/.test(e.target)), '…with their IDs masked');
      const literal = (await audit(`target=${encodeURIComponent('/v2/admin/audited%')}`)).body.data.items;
      assert.equal(literal.length, 0, '% in a filter is a literal character');
    });

    test('keyset paging walks every entry once, newest first; since/until bound by time', async () => {
      const all = (await audit('limit=1000')).body.data.items;
      assert.ok(all.length >= 8);
      const seen: Entry[] = [];
      let cursor: string | null = null;
      do {
        const page: { data: { items: Entry[]; next: string | null } } = (await audit(`limit=3${cursor ? `&cursor=${cursor}` : ''}`)).body;
        assert.ok(page.data.items.length <= 3);
        seen.push(...page.data.items);
        cursor = page.data.next;
      } while (cursor);
      assert.deepEqual(seen.map((e) => e.id), all.map((e) => e.id));
      for (let i = 1; i < all.length; i++) assert.ok(all[i - 1]!.at >= all[i]!.at);
      const middle = all[Math.floor(all.length / 2)]!.at;
      const newer = (await audit(`since=${middle}&limit=1000`)).body.data.items;
      const older = (await audit(`until=${middle}&limit=1000`)).body.data.items;
      assert.ok(newer.every((e) => e.at >= middle) && older.every((e) => e.at <= middle));
      assert.equal(new Set([...newer, ...older].map((e) => e.id)).size, all.length);
      assert.equal((await audit('since=yesterday')).status, 400);
      assert.equal((await audit('cursor=bogus')).status, 400);
    });

    test('only administrators read it', async () => {
      const carol = await (await fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'carol', password: 'Audit-Password-0123' }) })).json() as { data: { token: string } };
      assert.equal((await audit('', carol.data.token)).status, 403);
      assert.equal((await fetch(`${shelf.url}/api/admin/audit`)).status, 401);
    });

    test('shelf admin audit prints the filtered trail, as a table or JSON lines, following pages', async () => {
      const env = ['--url', shelf.url, '--token', ADMIN_TOKEN];
      const table = await cli.run(['admin', 'audit', ...env, '--action', 'sign-in-failed']);
      assert.equal(table.code, 0, table.stderr);
      const rows = table.stdout.trim().split('\n');
      assert.equal(rows[0], 'TIME\tUSER\tACTION\tTARGET\tADDRESS');
      assert.ok(rows.slice(1).some((r) => /\tmallory\tsign-in-failed\t\/api\/login\t127\.0\.0\.1$/.test(r)));
      const json = await cli.run(['admin', 'audit', ...env, '--json', '--limit', '1500']);
      assert.equal(json.code, 0, json.stderr);
      const entries = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as Entry);
      assert.equal(entries.length, (await audit('limit=1000')).body.data.items.length);
      const two = await cli.run(['admin', 'audit', ...env, '--json', '--limit', '2']);
      assert.equal(two.stdout.trim().split('\n').length, 2);
      const badTime = await cli.run(['admin', 'audit', ...env, '--since', 'soon']);
      assert.equal(badTime.code, 1);
      assert.match(badTime.stderr, /since must be a time/);
    });
  });
}
