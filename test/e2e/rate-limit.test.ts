import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startShelf, type TestShelf } from '../helpers/shelf.js';

let shelf: TestShelf;
before(async () => {
  shelf = await startShelf({ env: { SHELF_AUTH_RATE_LIMIT: '3' } });
});
after(async () => shelf?.stop());

test('sign-in and token requests are limited per address, in each protocol\'s error format', async () => {
  const login = () => fetch(`${shelf.url}/api/login`, { method: 'POST', body: JSON.stringify({ username: 'admin', password: 'wrong-password' }) });
  for (let i = 0; i < 3; i++) assert.equal((await login()).status, 401);
  const limited = await login();
  assert.equal(limited.status, 429);
  assert.equal(((await limited.json()) as { error: { code: number } }).error.code, 429);

  const token = () => fetch(`${shelf.url}/v2/token?service=shelf`);
  for (let i = 0; i < 3; i++) assert.equal((await token()).status, 200);
  const tooMany = await token();
  assert.equal(tooMany.status, 429);
  assert.ok(tooMany.headers.get('retry-after'));
  assert.equal(((await tooMany.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'TOOMANYREQUESTS');
  // Other endpoints are not limited.
  assert.equal((await fetch(`${shelf.url}/version`)).status, 200);
});
