import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freshPostgres, startShelf, type TestShelf } from '../helpers/shelf.js';

let pg: Awaited<ReturnType<typeof freshPostgres>>;
const nodes: TestShelf[] = [];
before(async () => {
  pg = await freshPostgres();
  // The first node migrates the database; the second starts on it.
  nodes.push(await startShelf({ dbUrl: pg.url, env: { SHELF_AUTH_RATE_LIMIT: '3' } }));
  nodes.push(await startShelf({ dbUrl: pg.url, env: { SHELF_AUTH_RATE_LIMIT: '3' } }));
});
after(async () => {
  for (const n of nodes) await n.stop();
  await pg?.drop();
});

test('two nodes on one PostgreSQL database count sign-in attempts of one address together', async () => {
  const login = (node: TestShelf) =>
    fetch(`${node.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'admin', password: 'wrong-password' }) });
  const [a, b] = nodes as [TestShelf, TestShelf];
  assert.equal((await login(a)).status, 401);
  assert.equal((await login(b)).status, 401);
  assert.equal((await login(a)).status, 401);
  // The fourth attempt is over the limit on either node: the count is the database's, not a node's.
  assert.equal((await login(b)).status, 429);
  assert.equal((await login(a)).status, 429);
  // Another limited route keeps its own count.
  assert.equal((await fetch(`${b.url}/v2/token?service=shelf`)).status, 200);
});
