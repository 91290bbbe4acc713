import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');

interface Line {
  msg: string;
  level: number;
  requestId?: string;
  method?: string;
  url?: string;
  status?: number;
  caller?: string | null;
  protocol?: string;
  route?: string;
  bytesIn?: number;
  bytesOut?: number;
  ms?: number;
  ip?: string;
}

describe('one structured log line per request, with its request ID, and no secret in the log', { concurrency: false }, () => {
  let shelf: TestShelf;
  const lines = (): Line[] =>
    shelf
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);
  const requestLine = async (id: string): Promise<Line> => {
    for (let i = 0; i < 50; i++) {
      const found = lines().filter((l) => l.msg === 'request' && l.requestId === id);
      if (found.length) {
        assert.equal(found.length, 1, `one line for request ${id}`);
        return found[0]!;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no log line for request ${id}`);
  };

  before(async () => {
    shelf = await startShelf({ env: { SHELF_LOG_LEVEL: 'info' } });
  });
  after(() => shelf?.stop());

  test('the line names the request ID (also in X-Request-Id and the error body), caller, protocol, route, status, bytes and duration', async () => {
    const ok = await api(shelf)('/v1/entities/admin');
    assert.equal(ok.status, 200);
    const okId = ok.headers.get('x-request-id')!;
    assert.match(okId, /^[0-9a-f-]{36}$/);
    const body = await ok.text();
    const line = await requestLine(okId);
    assert.equal(line.method, 'GET');
    assert.equal(line.url, '/v1/entities/admin');
    assert.equal(line.route, '/v1/entities/:entity');
    assert.equal(line.protocol, 'library');
    assert.equal(line.status, 200);
    assert.equal(line.caller, 'admin');
    assert.equal(line.ip, '127.0.0.1');
    assert.equal(line.bytesOut, Buffer.byteLength(body));
    assert.equal(typeof line.ms, 'number');

    const missing = await fetch(`${shelf.url}/v2/admin/nothing/manifests/latest`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(missing.status, 404);
    const err = (await missing.json()) as { errors: unknown[]; requestId: string };
    assert.equal(err.requestId, missing.headers.get('x-request-id'));
    assert.ok(Array.isArray(err.errors));
    assert.equal((await requestLine(err.requestId)).protocol, 'oci');

    const lib = await fetch(`${shelf.url}/v1/entities/nobody-here`);
    const libErr = (await lib.json()) as { error: { code: number }; requestId: string };
    assert.equal(libErr.error.code, 404);
    assert.equal(libErr.requestId, lib.headers.get('x-request-id'));

    const given = await fetch(`${shelf.url}/healthz`, { headers: { 'x-request-id': 'edge-0123456789abcdef' } });
    assert.equal(given.headers.get('x-request-id'), 'edge-0123456789abcdef', "a front end's request ID is kept");
    const forged = await fetch(`${shelf.url}/healthz`, { headers: { 'x-request-id': 'x" } injected {' } });
    assert.match(forged.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/, 'one that is not plainly an ID is replaced');
  });

  test('tokens, passwords, Basic credentials, download-link tokens and ?token= values never reach the log', async () => {
    const password = 'Correct-Horse-Battery-Staple-42';
    const created = await api(shelf)('/api/users', { method: 'POST', body: JSON.stringify({ username: 'logbob', password }) });
    assert.equal(created.status, 200, await created.text());

    const login = await fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'logbob', password }) });
    assert.equal(login.status, 200);
    const { data } = (await login.json()) as { data: { token: string } };
    const sessionToken = data.token;
    const wrongPassword = 'Wrong-Password-Nobody-Should-See-7';
    assert.equal((await fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'logbob', password: wrongPassword }) })).status, 401);

    // Registry clients send the username and an API token as Basic credentials.
    const basic = Buffer.from(`logbob:${sessionToken}`).toString('base64');
    const token = await fetch(`${shelf.url}/v2/token?service=shelf&scope=repository:logbob/x/y:pull`, { headers: { authorization: `Basic ${basic}` } });
    assert.equal(token.status, 200);
    const registryToken = ((await token.json()) as { token: string }).token;
    await fetch(`${shelf.url}/v2/_catalog`, { headers: { authorization: `Bearer ${registryToken}` } });

    const queryToken = 'query-string-secret-0123456789';
    await fetch(`${shelf.url}/v1/search?value=x&token=${queryToken}`);
    await fetch(`${shelf.url}/v1/entities/admin?password=${queryToken}-pw`);

    const push = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', path.join(FIXTURES, 'minimal-amd64.sif'), 'admin/logs/img:v1']);
    assert.equal(push.code, 0, push.stderr);
    const container = (await (await api(shelf)('/api/browse/containers/admin/logs/img')).json()) as { data: { images: Array<{ id: string }> } };
    const link = (await (await api(shelf)(`/api/browse/images/${container.data.images[0]!.id}/download`)).json()) as { data: { url: string } };
    const linkToken = link.data.url.split('/').pop()!;
    assert.equal((await fetch(`${shelf.url}${link.data.url}`)).status, 200);
    const redirect = await api(shelf)('/v1/imagefile/admin/logs/img:v1?arch=amd64', { redirect: 'manual' });
    assert.equal(redirect.status, 303);
    const redirectToken = redirect.headers.get('location')!.split('/').pop()!;

    const upload = await fetch(`${shelf.url}/v2/admin/logs/img/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const uploadId = upload.headers.get('location')!.split('/').pop()!.split('?')[0]!;

    await new Promise((r) => setTimeout(r, 300));
    const log = shelf.output();
    for (const [what, secret] of Object.entries({
      'admin token': ADMIN_TOKEN,
      password,
      'wrong password': wrongPassword,
      'Basic credentials': basic,
      'session token': sessionToken,
      'registry token': registryToken,
      '?token= value': queryToken,
      'download-link token': linkToken,
      'redirect download token': redirectToken,
      'upload session ID': uploadId,
    })) {
      assert.ok(secret.length >= 8, what);
      assert.ok(!log.includes(secret), `the ${what} is in the log`);
    }
    assert.ok(lines().some((l) => l.url === '/v1/search?value=x&token=…'), 'the masked URL is logged');
    assert.ok(lines().some((l) => l.url?.startsWith('/v1/imagefile/_download/…')));
  });
});
