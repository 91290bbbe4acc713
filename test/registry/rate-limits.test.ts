import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Registry } from '../../src/registry/registry.js';
import { openTestRegistry } from '../helpers/registry.js';
import { DB_KINDS } from '../helpers/shelf.js';

const MINUTE = 60_000;

for (const db of DB_KINDS) {
  describe(`shared rate-limit counters (${db})`, () => {
    let env: Awaited<ReturnType<typeof openTestRegistry>>;
    let r: Registry;
    before(async () => {
      env = await openTestRegistry(db);
      r = env.registry;
    });
    after(async () => env?.close());

    test('a window opens at the first hit, so a clock minute boundary neither resets nor doubles a count', async () => {
      // Just before a minute boundary: a fixed clock window would reset at the boundary.
      const t = Math.ceil(Date.now() / MINUTE) * MINUTE + 10 * MINUTE - 1_000;
      const counts = [];
      for (const at of [t, t + 500, t + 1_500, t + 59_000]) counts.push(await r.store.rateLimits.hit('addr', MINUTE, at));
      assert.deepEqual(counts.map((c) => c.hits), [1, 2, 3, 4]);
      assert.deepEqual(counts.map((c) => c.ttl), [MINUTE, MINUTE - 500, MINUTE - 1_500, 1_000]);
      // A minute after the first hit the next one opens a new window.
      const next = await r.store.rateLimits.hit('addr', MINUTE, t + MINUTE);
      assert.deepEqual(next, { hits: 1, ttl: MINUTE });
      // Keys count apart.
      assert.equal((await r.store.rateLimits.hit('other', MINUTE, t + MINUTE)).hits, 1);
    });
  });
}
