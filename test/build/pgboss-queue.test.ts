import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PgBoss } from 'pg-boss';
import { jobId, PgBossQueue, queueName, type LostJobs } from '../../src/build/pgboss-queue.js';
import { openMetaDb, type MetaDb } from '../../src/meta/db.js';
import { freshPostgres } from '../helpers/shelf.js';

const BUILD = '65f0c0ffee0123456789abcd';

describe('PgBossQueue: the job of a builder that died', () => {
  let pgdb: Awaited<ReturnType<typeof freshPostgres>>;
  let meta: MetaDb;
  let queue: PgBossQueue;
  const errors: unknown[] = [];
  const reasons: string[] = [];

  before(async () => {
    pgdb = await freshPostgres();
    meta = await openMetaDb(pgdb.url);
    // What Builds.onLost answers for a build nobody claimed: queue it again.
    const lost: LostJobs = {
      onLost: async (id, reason) => {
        reasons.push(reason);
        const row = await meta.db.selectFrom('builds').select('state').where('id', '=', id).executeTakeFirst();
        return row?.state === 'queued' ? 'requeue' : 'ignored';
      },
    };
    queue = new PgBossQueue(meta.db, { url: pgdb.url, schema: 'pgboss', staleSeconds: 1, timeoutSeconds: 60, onError: (err) => errors.push(err) }, lost);
  });
  after(async () => {
    await queue?.close();
    await meta?.close();
    await pgdb?.drop();
  });

  test('taken by a builder that died before it claimed the build: queued again after the heartbeat, and run', async () => {
    await meta.db
      .insertInto('builds')
      .values({ id: BUILD, owner_id: 'u1', owner_name: 'admin', definition: 'Bootstrap: scratch\n', arch: 'amd64', library_ref: 'admin/q/lost:1', state: 'queued', image_size: 0, cancel_requested: 0, log_seq: 0, created_at: new Date().toISOString() })
      .execute();
    await queue.enqueue(BUILD, 'amd64');
    // The dying builder: fetches the job (it is active now) and is never heard from again.
    const dead = new PgBoss({ connectionString: pgdb.url, supervise: false, schedule: false, registerInstance: false });
    await dead.start();
    const [job] = await dead.fetch(queueName('amd64'));
    assert.equal(job?.id, jobId(BUILD));
    await dead.stop({ graceful: false });

    const started = Date.now();
    const ran = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not run again; errors: ${errors.map(String).join('; ')}`)), 60_000);
      void queue.work({ arch: 'amd64', concurrency: 1, pollMs: 500, onError: (err) => errors.push(err) }, async (id) => {
        clearTimeout(timer);
        resolve(id);
      });
    });
    assert.equal(ran, BUILD);
    // Not before pg-boss's heartbeat (10 s at least) ran out.
    assert.ok(Date.now() - started >= 8_000, `run again after ${Date.now() - started} ms`);
    assert.deepEqual(reasons, ['no heartbeat for 10s']);
    assert.deepEqual(errors, []);
  });
});
