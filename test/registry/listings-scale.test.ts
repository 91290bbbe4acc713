import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import type { Principal } from '../../src/registry/accounts/accounts.js';
import type { Registry } from '../../src/registry/registry.js';
import { seedLibrary } from '../helpers/bulk-seed.js';
import { openTestRegistry } from '../helpers/registry.js';
import { DB_KINDS } from '../helpers/shelf.js';

/** Past SQLite's (32 766) and PostgreSQL's (65 535) bind-parameter limits, which an `IN (…)` of visible IDs hit. */
const CONTAINERS = 70_050;

for (const db of DB_KINDS) {
  describe(`listings of ${CONTAINERS} containers (${db})`, { concurrency: false }, () => {
    let env: Awaited<ReturnType<typeof openTestRegistry>>;
    let r: Registry;
    let admin: Principal;
    let member: Principal;

    /** What anonymous callers may read, counted by a query of its own (not the listing's predicate). */
    const publicCount = async (where = sql`1 = 1`) => {
      const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM containers k
        JOIN collections c ON c.id = k.collection_id JOIN entities e ON e.id = c.entity_id
        WHERE e.private = 0 AND c.private = 0 AND k.private = 0 AND ${where}`.execute(r.meta.db);
      return Number(rows[0]!.n);
    };

    before(async () => {
      env = await openTestRegistry(db);
      r = env.registry;
      admin = await r.accounts.createUser('root', { isAdmin: true });
      const seeded = await seedLibrary(r.meta.db, r.meta.dialect, { containers: CONTAINERS });
      member = await r.accounts.principalOf(seeded.memberId);
    });
    after(async () => env?.close());

    test('the catalog pages through every repository once, in byte order, for admins and anonymous callers', async () => {
      for (const [who, expected] of [[admin, CONTAINERS], [null, await publicCount()]] as const) {
        const names: string[] = [];
        for (let last: string | null = null; ; ) {
          const page = await r.listings.catalog(who, last, 1000);
          names.push(...page.names);
          if (!page.more) break;
          last = page.names[page.names.length - 1]!;
        }
        assert.equal(names.length, expected);
        assert.equal(new Set(names).size, names.length, 'no repository twice');
        assert.deepEqual(names, [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      }
    });

    test('search pages through every match the caller may read, exact name first', async () => {
      const expected = await publicCount(sql`(k.name LIKE '%gromacs%' OR k.description LIKE '%gromacs%')`);
      assert.ok(expected > 10_000, `a broad query (${expected})`);
      const seen = new Set<string>();
      for (let cursor: string | null = null; ; ) {
        const page: Awaited<ReturnType<Registry['search']['containers']>> = await r.search.containers(null, { value: 'gromacs', arches: [], signed: false, limit: 200, cursor });
        for (const h of page.items) seen.add(h.container.id);
        if (!page.next) break;
        cursor = page.next;
      }
      assert.equal(seen.size, expected);
      // An exact container name ranks first, and the filters apply in the query.
      const exact = await r.search.containers(null, { value: 'gromacs-6', arches: [], signed: false, limit: 5 });
      assert.equal(exact.items[0]!.container.name, 'gromacs-6');
      assert.equal(exact.items[0]!.tier, 0);
      const arm = await r.search.run(null, { value: 'gromacs', arches: ['arm64'], signed: true, limit: 50 });
      assert.equal(arm.containers.length, 50);
      assert.ok(arm.images.every((i) => i.image.arch === 'arm64' && i.image.signed === 1));
    });

    test('a group member sees the group entities\' private containers in the catalog and browse', async () => {
      // e6 is private and belongs to group g0, which the member reads.
      const page = await r.listings.catalog(member, 'e6/', 10);
      assert.ok(page.names.every((n) => n.startsWith('e6/')), page.names.join(' '));
      const anon = await r.listings.catalog(null, 'e6/', 10);
      assert.ok(anon.names.every((n) => !n.startsWith('e6/')), anon.names.join(' '));
      const recent = await r.browse.recent(member, 100);
      assert.equal(recent.items.length, 100);
      assert.ok(recent.next);
    });

    test('keyset pages stay stable while rows are inserted between them: no duplicates, no gaps', async () => {
      const before = new Set((await sql<{ path: string }>`SELECT path FROM search_docs WHERE kind = 'container'`.execute(r.meta.db)).rows.map((x) => x.path));
      const root = await r.namespaces.createEntity(admin, 'aaa');
      const late = await r.namespaces.createCollection(admin, root.id, 'late');
      const seen: string[] = [];
      let inserted = 0;
      for (let last: string | null = null; ; ) {
        const page = await r.listings.catalog(admin, last, 5000);
        seen.push(...page.names);
        // New containers land before and after the cursor.
        await r.namespaces.createContainer(admin, late.id, `x${inserted++}`);
        if (!page.more) break;
        last = page.names[page.names.length - 1]!;
      }
      assert.equal(new Set(seen).size, seen.length, 'no duplicates');
      const seenSet = new Set(seen);
      assert.deepEqual([...before].filter((p) => !seenSet.has(p)), [], 'no gaps');

      // Recent pages: containers created meanwhile are newer than the cursor and never repeat older ones.
      const recentSeen: string[] = [];
      for (let cursor: string | null = null, n = 0; n < 5; n++) {
        const page = await r.browse.recent(admin, 100, cursor);
        recentSeen.push(...page.items.map((k) => `${k.entity}/${k.collection}/${k.container}`));
        await r.namespaces.createContainer(admin, late.id, `y${n}`);
        if (!page.next) break;
        cursor = page.next;
      }
      assert.equal(new Set(recentSeen).size, recentSeen.length);
    });
  });
}
