import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../helpers/browser.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';
import { createUserWithToken } from '../helpers/users.js';

const libclient = path.join(CLIENTS, 'libclient');
const orasclient = path.join(CLIENTS, 'orasclient');

/** This machine's address other than loopback: a target a non-administrator's hook may have. */
function hostAddress(): string {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  throw new Error('no non-loopback IPv4 address');
}

interface Received {
  event: string;
  delivery: string;
  signature: string;
  raw: string;
  body: Record<string, unknown>;
}

/** A webhook receiver: records every POST; answers the queued statuses first, then 200. */
async function startReceiver(port = 0): Promise<{ port: number; got: Received[]; answers: number[]; close(): Promise<void> }> {
  const got: Received[] = [];
  const answers: number[] = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      const status = answers.shift() ?? 200;
      if (status === 200) got.push({ event: String(req.headers['x-shelf-event']), delivery: String(req.headers['x-shelf-delivery']), signature: String(req.headers['x-shelf-signature']), raw, body: JSON.parse(raw) as Record<string, unknown> });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '0.0.0.0', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    got,
    answers,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const WEBHOOK_ENV = { SHELF_WEBHOOKS_RETRY_BASE: '1', SHELF_WEBHOOKS_POLL: '1', SHELF_GC_INTERVAL: '0' };

for (const db of DB_KINDS) {
  describe(`webhooks (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    let alice = '';
    let bob = '';
    let hook: { id: string; secret: string };
    const asUser = (token: string | null) => api(shelf, token);
    const post = (token: string | null, body: unknown) => asUser(token)('/api/webhooks', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const of = (type: string) => receiver.got.filter((r) => r.event === type);

    before(async () => {
      shelf = await startShelf({ db, env: WEBHOOK_ENV });
      receiver = await startReceiver();
      alice = await createUserWithToken(shelf.dbUrl, 'alice');
      bob = await createUserWithToken(shelf.dbUrl, 'bob');
      const made = await asUser(alice)('/v1/entities', { method: 'POST', body: JSON.stringify({ name: 'alice' }) });
      assert.ok(made.status === 200 || made.status === 409, await made.text());
    });
    after(async () => {
      await shelf?.stop();
      await receiver?.close();
    });

    test('who may make which hook: owners for their entity, administrators for all; no loopback or link-local targets for others', async () => {
      const target = `http://${hostAddress()}:${receiver.port}/hook`;
      assert.equal((await post(null, { entity: 'alice', url: target, events: ['push'] })).status, 401);
      const foreign = await post(bob, { entity: 'alice', url: target, events: ['push'] });
      assert.equal(foreign.status, 403);
      assert.match(((await foreign.json()) as { error: { message: string } }).error.message, /owner of alice/);
      assert.equal((await post(alice, { url: target, events: ['push'] })).status, 403, 'a global hook is for administrators');
      for (const url of [`http://127.0.0.1:${receiver.port}/`, 'http://169.254.169.254/latest/meta-data/', `http://[::1]:${receiver.port}/`, 'http://localhost/']) {
        const refused = await post(alice, { entity: 'alice', url, events: ['push'] });
        assert.equal(refused.status, 400, url);
        assert.match(((await refused.json()) as { error: { message: string } }).error.message, /loopback or link-local|does not resolve/);
      }
      for (const [body, message] of [
        [{ entity: 'alice', url: 'ftp://example.org/', events: ['push'] }, /http/],
        [{ entity: 'alice', url: target, events: [] }, /name the events/],
        [{ entity: 'alice', url: target, events: ['explode'] }, /unknown event explode/],
        [{ entity: 'alice', url: 'http://user:pw@example.org/', events: ['push'] }, /no credentials/],
      ] as const) {
        const r = await post(alice, body);
        assert.equal(r.status, 400);
        assert.match(((await r.json()) as { error: { message: string } }).error.message, message);
      }
      const created = await post(alice, { entity: 'alice', url: target, events: ['push', 'pull', 'delete', 'tag', 'signature'] });
      assert.equal(created.status, 200, await created.clone().text());
      hook = ((await created.json()) as { data: { id: string; secret: string } }).data;
      assert.ok(hook.secret.length >= 32);
      const listed = ((await (await asUser(alice)('/api/webhooks?entity=alice')).json()) as { data: { webhooks: Array<{ id: string; secret?: string }> } }).data.webhooks;
      assert.deepEqual(listed.map((h) => h.id), [hook.id]);
      assert.equal(listed[0]!.secret, undefined, 'the secret is shown once');
      assert.equal((await asUser(bob)('/api/webhooks?entity=alice')).status, 403);
      assert.equal((await asUser(bob)(`/api/webhooks/${hook.id}/deliveries`)).status, 403);
    });

    test('push, tag, pull and delete of the real clients arrive signed with the secret', async () => {
      const sif = path.join(FIXTURES, 'minimal-amd64.sif');
      const push = await run(libclient, ['--url', shelf.url, '--token', alice, 'push', sif, 'alice/c/app:v1']);
      assert.equal(push.code, 0, push.stderr);
      await eventually(async () => assert.ok(of('push').length >= 1 && of('tag').length >= 1), 15_000);
      const pushed = of('push')[0]!;
      assert.equal(pushed.body.repository, 'alice/c/app');
      assert.equal(pushed.body.protocol, 'library');
      assert.match(String(pushed.body.digest), /^sha256:[0-9a-f]{64}$/);
      assert.equal(pushed.signature, `sha256=${createHmac('sha256', hook.secret).update(pushed.raw).digest('hex')}`);
      assert.notEqual(pushed.signature, `sha256=${createHmac('sha256', 'another secret').update(pushed.raw).digest('hex')}`);
      assert.equal(of('tag')[0]!.body.tag, 'v1');

      const pulls = await Promise.all([1, 2, 3].map((i) => run(libclient, ['--url', shelf.url, '--token', alice, 'pull', '--arch', 'amd64', 'alice/c/app:v1', path.join(shelf.dataDir, `pulled-${i}.sif`)])));
      for (const p of pulls) assert.equal(p.code, 0, p.stderr);
      await eventually(async () => assert.equal(of('pull').reduce((n, r) => n + Number(r.body.count), 0), 3), 15_000);

      const oras = await run(orasclient, ['--plain-http', '--user', 'alice', '--pass', alice, 'push', sif, `oras://${new URL(shelf.url).host}/alice/c/oras:v1`]);
      assert.equal(oras.code, 0, oras.stdout + oras.stderr);
      await eventually(async () => assert.ok(of('push').some((r) => r.body.protocol === 'oci' && r.body.repository === 'alice/c/oras')), 15_000);

      const del = await run(libclient, ['--url', shelf.url, '--token', alice, 'delete', '--arch', 'amd64', 'alice/c/app:v1']);
      assert.equal(del.code, 0, del.stderr);
      await eventually(async () => assert.ok(of('delete').some((r) => r.body.repository === 'alice/c/app')), 15_000);
      assert.equal(new Set(receiver.got.map((r) => r.delivery)).size, receiver.got.length, 'each delivery once');
    });

    test('a signature turning verified (its key added) is an event', async () => {
      const push = await run(libclient, ['--url', shelf.url, '--token', alice, 'push', path.join(FIXTURES, 'signed-pgp-rsa.sif'), 'alice/c/signed:v1']);
      assert.equal(push.code, 0, push.stderr);
      await eventually(async () => assert.ok(of('signature').some((r) => r.body.status === 'unverified')), 15_000);
      const key = await readFile(path.join(FIXTURES, 'keys/pgp-rsa3072-public.asc'), 'utf8');
      const added = await fetch(`${shelf.url}/pks/add`, { method: 'POST', headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ keytext: key }).toString() });
      assert.equal(added.status, 200);
      await eventually(async () => {
        const verified = of('signature').find((r) => r.body.status === 'verified');
        assert.ok(verified);
        assert.deepEqual(verified.body.signatures, [{ fingerprint: '5D60487627A589F3F579EF9D8802BDF6FAF76328', state: 'verified' }]);
      }, 15_000);
    });

    test('a failing receiver is retried with backoff; the delivery log shows each attempt', async () => {
      type Log = { data: { deliveries: Array<{ event: string; state: string; attempts: number; lastStatus: number; payload: { repository: string } }> } };
      const deliveries = async () => ((await (await asUser(alice)(`/api/webhooks/${hook.id}/deliveries?limit=500`)).json()) as Log).data.deliveries;
      const failedSoFar = (await deliveries()).reduce((n, d) => n + d.attempts - (d.state === 'delivered' ? 1 : 0), 0);
      receiver.answers.push(500, 503);
      const before = receiver.got.length;
      const push = await run(libclient, ['--url', shelf.url, '--token', alice, 'push', path.join(FIXTURES, 'minimal-arm64.sif'), 'alice/c/retry:v1']);
      assert.equal(push.code, 0, push.stderr);
      await eventually(async () => assert.ok(receiver.got.slice(before).some((r) => r.event === 'push' && r.body.repository === 'alice/c/retry')), 20_000);
      // The two refusals may have met the push and its tag event, or one of them twice: either
      // way, once nothing is pending, two attempts failed and every delivery got through.
      await eventually(async () => {
        const log = await deliveries();
        assert.ok(log.every((d) => d.state === 'delivered' && d.lastStatus === 200), JSON.stringify(log.filter((d) => d.state !== 'delivered')));
        assert.equal(log.reduce((n, d) => n + d.attempts - 1, 0) - failedSoFar, 2, 'two failed attempts in all, each retried');
        assert.ok(log.some((d) => d.payload.repository === 'alice/c/retry' && d.event === 'push'));
      }, 20_000);
    });

    test('the outbox survives a restart: an event told while the receiver was down arrives once it is back', async () => {
      const port = receiver.port;
      await receiver.close();
      const push = await run(libclient, ['--url', shelf.url, '--token', alice, 'push', path.join(FIXTURES, 'labels-object-amd64.sif'), 'alice/c/later:v1']);
      assert.equal(push.code, 0, push.stderr);
      await eventually(async () => {
        const log = ((await (await asUser(alice)(`/api/webhooks/${hook.id}/deliveries`)).json()) as { data: { deliveries: Array<{ state: string; attempts: number; lastError: string | null; payload: { repository: string } }> } }).data.deliveries;
        const pending = log.find((d) => d.payload.repository === 'alice/c/later');
        assert.ok(pending && pending.state === 'pending' && pending.attempts >= 1 && pending.lastError, JSON.stringify(pending));
      }, 15_000);
      await shelf.kill('SIGKILL');
      shelf = await startShelf({ db, env: WEBHOOK_ENV, dataDir: shelf.dataDir, dbUrl: shelf.dbUrl });
      receiver = await startReceiver(port);
      await eventually(async () => assert.ok(receiver.got.some((r) => r.event === 'push' && r.body.repository === 'alice/c/later')), 30_000);
    });

    test('an administrator\'s global hook gets every entity\'s events; a removed hook gets nothing more', async () => {
      const global = await post(ADMIN_TOKEN, { url: `http://127.0.0.1:${receiver.port}/global`, events: ['push'] });
      assert.equal(global.status, 200, await global.clone().text());
      const id = ((await global.json()) as { data: { id: string } }).data.id;
      assert.equal((await asUser(alice)('/api/webhooks')).status, 403);
      const all = ((await (await asUser(ADMIN_TOKEN)('/api/webhooks')).json()) as { data: { webhooks: Array<{ id: string; entity: string | null }> } }).data.webhooks;
      assert.deepEqual(all.map((h) => [h.id, h.entity]).sort(), [[hook.id, 'alice'], [id, null]].sort());
      const push = await run(libclient, ['--url', shelf.url, '--token', bob, 'push', path.join(FIXTURES, 'minimal-amd64.sif'), 'bob/c/b:v1']);
      assert.equal(push.code, 0, push.stderr);
      await eventually(async () => assert.ok(receiver.got.some((r) => r.body.repository === 'bob/c/b'), JSON.stringify((await (await asUser(ADMIN_TOKEN)(`/api/webhooks/${id}/deliveries`)).json()))), 15_000);
      assert.equal(receiver.got.filter((r) => r.body.repository === 'bob/c/b').length, 1, "alice's hook does not see bob's push");
      assert.equal((await asUser(ADMIN_TOKEN)(`/api/webhooks/${id}`, { method: 'DELETE' })).status, 200);
      assert.equal((await asUser(alice)(`/api/webhooks/${id}`, { method: 'DELETE' })).status, 404);
      const seen = receiver.got.length;
      const again = await run(libclient, ['--url', shelf.url, '--token', bob, 'push', path.join(FIXTURES, 'minimal-arm64.sif'), 'bob/c/b2:v1']);
      assert.equal(again.code, 0, again.stderr);
      await new Promise((r) => setTimeout(r, 4000));
      assert.equal(receiver.got.slice(seen).filter((r) => String(r.body.repository).startsWith('bob/')).length, 0);
    });
  });
}

describe('webhooks over two nodes on one PostgreSQL database', { concurrency: false }, () => {
  let a: TestShelf;
  let b: TestShelf;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  before(async () => {
    a = await startShelf({ db: 'postgres', env: WEBHOOK_ENV });
    b = await startShelf({ env: WEBHOOK_ENV, dataDir: a.dataDir, dbUrl: a.dbUrl });
    receiver = await startReceiver();
  });
  after(async () => {
    await b?.kill();
    await a?.stop();
    await receiver?.close();
  });

  test('every event is delivered once, whichever node told it and whichever delivers it', async () => {
    const made = await api(a)('/api/webhooks', { method: 'POST', body: JSON.stringify({ url: `http://127.0.0.1:${receiver.port}/`, events: ['push', 'tag'] }), headers: { 'content-type': 'application/json' } });
    assert.equal(made.status, 200, await made.clone().text());
    const files = ['minimal-amd64.sif', 'minimal-arm64.sif', 'labels-object-amd64.sif', 'signed-pgp-rsa.sif'];
    await Promise.all(
      files.map((file, i) => run(libclient, ['--url', (i % 2 ? b : a).url, '--token', ADMIN_TOKEN, 'push', path.join(FIXTURES, file), `admin/nodes/k${i}:v1`]).then((r) => assert.equal(r.code, 0, r.stderr))),
    );
    await eventually(async () => assert.equal(receiver.got.filter((r) => r.event === 'push').length, files.length), 20_000);
    await new Promise((r) => setTimeout(r, 3000));
    const pushes = receiver.got.filter((r) => r.event === 'push').map((r) => r.body.repository).sort();
    assert.deepEqual(pushes, files.map((_, i) => `admin/nodes/k${i}`));
    assert.equal(new Set(receiver.got.map((r) => r.delivery)).size, receiver.got.length, 'no delivery sent twice');
    assert.equal(receiver.got.filter((r) => r.event === 'tag').length, files.length);
  });
});
