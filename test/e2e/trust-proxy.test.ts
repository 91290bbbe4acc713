import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openMetaDb } from '../../src/meta/db.js';
import { DB_KINDS, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const LIMIT = 3;

/** The addresses the audit log recorded for creating entity `name`. */
async function auditedAddresses(shelf: TestShelf, name: string): Promise<Array<string | null>> {
  const meta = await openMetaDb(shelf.dbUrl);
  try {
    const rows = await meta.db.selectFrom('audit_log').select(['ip', 'action', 'target']).where('target', '=', '/v1/entities').execute();
    assert.ok(rows.length > 0, `entity ${name} was audited`);
    return rows.map((r) => r.ip);
  } finally {
    await meta.close();
  }
}

const FORWARDED = { 'x-forwarded-host': 'registry.example.org', 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' };

/** The token realm and the oci-redirect registry a client is sent to, asked with proxy headers. */
async function clientFacingUrls(shelf: TestShelf): Promise<{ realm: string; redirect: string }> {
  const ping = await fetch(`${shelf.url}/v2/`, { headers: FORWARDED });
  await ping.arrayBuffer();
  const realm = /realm="([^"]+)"/.exec(ping.headers.get('www-authenticate') ?? '')?.[1] ?? '';
  const res = await api(shelf)('/v1/oci-redirect?namespace=admin/realm/img&accessTypes=pull,push', { headers: FORWARDED });
  assert.equal(res.status, 200);
  return { realm, redirect: ((await res.json()) as { url: string }).url };
}

const token = (shelf: TestShelf, forwardedFor: string) => fetch(`${shelf.url}/v2/token`, { headers: { 'x-forwarded-for': forwardedFor } });

for (const db of DB_KINDS) {
  describe(`X-Forwarded-For is believed only from trusted proxies (${db})`, { concurrency: false }, () => {
    test('by default: a forged header neither escapes the rate limit nor reaches the audit log', async () => {
      const shelf = await startShelf({ db, env: { SHELF_AUTH_RATE_LIMIT: String(LIMIT) } });
      try {
        const statuses = [];
        for (let i = 0; i < LIMIT + 2; i++) statuses.push((await token(shelf, `198.51.100.${i + 1}`)).status);
        assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
        const res = await api(shelf)('/v1/entities', { method: 'POST', body: JSON.stringify({ name: 'forged' }), headers: { 'x-forwarded-for': '203.0.113.9' } });
        assert.equal(res.status, 200);
        assert.deepEqual(await auditedAddresses(shelf, 'forged'), ['127.0.0.1']);
        // Forged host and scheme do not move the token realm either: it stays where the client connected.
        const urls = await clientFacingUrls(shelf);
        assert.equal(urls.realm, `${shelf.url}/v2/token`);
        assert.equal(new URL(urls.redirect).host, new URL(shelf.url).host);
      } finally {
        await shelf.stop();
      }
    });

    test('with trustProxy naming the proxy: its header gives the client address', async () => {
      const shelf = await startShelf({ db, env: { SHELF_AUTH_RATE_LIMIT: String(LIMIT), SHELF_TRUST_PROXY: '10.0.0.0/8, 127.0.0.0/8' } });
      try {
        // Each client behind the proxy has its own budget...
        for (let i = 0; i < LIMIT + 2; i++) assert.equal((await token(shelf, `198.51.100.${i + 1}`)).status, 200);
        // ...and one client's is spent as before.
        const statuses = [];
        for (let i = 0; i < LIMIT + 1; i++) statuses.push((await token(shelf, '198.51.100.200')).status);
        assert.deepEqual(statuses, [200, 200, 200, 429]);
        const res = await api(shelf)('/v1/entities', { method: 'POST', body: JSON.stringify({ name: 'proxied' }), headers: { 'x-forwarded-for': '203.0.113.9' } });
        assert.equal(res.status, 200);
        assert.deepEqual(await auditedAddresses(shelf, 'proxied'), ['203.0.113.9']);
        // The client reached the proxy's host over HTTPS: the token realm and the registry it is sent to are there.
        const urls = await clientFacingUrls(shelf);
        assert.equal(urls.realm, 'https://registry.example.org/v2/token');
        assert.equal(new URL(urls.redirect).origin, 'https://registry.example.org');
      } finally {
        await shelf.stop();
      }
    });
  });
}
