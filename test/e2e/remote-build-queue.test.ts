import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { SceBuildClient, assertTwoAtOnce, startBuilder, withBuilderIds, type Builder } from '../helpers/build-client.js';
import { shelfCli } from '../helpers/cli.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, freshPostgres, startShelf, type TestShelf } from '../helpers/shelf.js';

const TINY_DEF = 'Bootstrap: scratch\n\n%labels\n    org.example.purpose queue\n';

describe('remote builder on PostgreSQL: builds go through pg-boss', { concurrency: false }, () => {
  let pgdb: Awaited<ReturnType<typeof freshPostgres>>;
  let sql: pg.Client;
  let dir: string;
  let shelf: TestShelf;
  let client: SceBuildClient;
  const builders: Builder[] = [];
  /** Undone in reverse order after the tests. */
  const undo: Array<() => Promise<unknown>> = [];
  const jobs = async (buildId: string) =>
    (await sql.query<{ name: string; state: string }>("SELECT name, state FROM pgboss.job WHERE data->>'build' = $1 ORDER BY created_on", [buildId])).rows;

  before(async () => {
    undo.push(await withBuilderIds());
    pgdb = await freshPostgres();
    undo.push(() => pgdb.drop());
    dir = await mkdtemp(path.join(tmpdir(), 'shelf-rbq-'));
    undo.push(() => rm(dir, { recursive: true, force: true }));
    await chmod(dir, 0o711);
    sql = new pg.Client({ connectionString: pgdb.url });
    await sql.connect();
    undo.push(() => sql.end());
    // No worker in the server: builds wait until a `shelf builder` starts.
    shelf = await startShelf({ dbUrl: pgdb.url, dataDir: path.join(dir, 'data'), env: { SHELF_BUILD_WORKER: 'false' } });
    undo.push(() => shelf.stop(), async () => Promise.all(builders.map((b) => b.kill())));
    client = new SceBuildClient(shelf.url, ADMIN_TOKEN);
  });
  after(async () => {
    for (const step of undo.reverse()) await step();
  });

  test('pg-boss starts lazily: no queue schema before the first build', async () => {
    const { rows } = await sql.query("SELECT 1 FROM pg_namespace WHERE nspname = 'pgboss'");
    assert.equal(rows.length, 0);
  });

  test('a build submitted while no builder runs is a pg-boss job, run when a builder starts; one cancelled before never runs', async () => {
    const waiting = await client.submit(TINY_DEF, { libraryRef: 'library://admin/queue/waiting:1' });
    const cancelled = await client.submit(TINY_DEF, { libraryRef: 'library://admin/queue/cancelled:1' });
    assert.deepEqual(await jobs(waiting.id), [{ name: 'shelf-build-amd64', state: 'created' }]);
    await client.cancel(cancelled.id);
    assert.equal((await client.status(cancelled.id)).state, 'cancelled');
    assert.deepEqual(await jobs(cancelled.id), [{ name: 'shelf-build-amd64', state: 'cancelled' }]);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await client.status(waiting.id)).state, 'queued', 'nothing runs it before a builder starts');

    builders.push(await startBuilder(pgdb.url, path.join(dir, 'data'), shelf.url, path.join(dir, 'work'), ['--concurrency', '2']));
    const out = await client.streamOutput(waiting.id);
    const status = await client.checkComplete(waiting.id);
    assert.ok(status.imageSize! > 0, out.text);
    assert.deepEqual(await jobs(waiting.id), [{ name: 'shelf-build-amd64', state: 'completed' }]);

    const after = await client.status(cancelled.id);
    assert.equal(after.state, 'cancelled');
    const log = await client.streamOutput(cancelled.id);
    assert.doesNotMatch(log.text, /INFO: +Build /, 'a cancelled build is never started');
  });

  test('shelf builder --concurrency 2: two builds run at once, a third waits for a free slot', async () => {
    await assertTwoAtOnce(client);
  });

  test('shelf admin backup leaves the queue schema out', async () => {
    const file = path.join(dir, 'metadata.pgdump');
    const cli = await shelfCli();
    const backup = await cli.run(['admin', 'backup', '--db', pgdb.url, '--data', path.join(dir, 'data'), '--out', file]);
    assert.equal(backup.code, 0, backup.stderr);
    const list = await run('pg_restore', ['--list', file]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /TABLE public builds /);
    assert.doesNotMatch(list.stdout, /pgboss/);
  });

  test('SIGTERM: the server and the builder stop pg-boss, close its connections and exit 0', async () => {
    const started = Date.now();
    await shelf.kill('SIGTERM');
    await builders[0]!.kill('SIGTERM');
    assert.equal(shelf.process.exitCode, 0, shelf.output());
    assert.equal(builders[0]!.process.exitCode, 0, builders[0]!.output());
    assert.ok(Date.now() - started < 15_000, `stopped in ${Date.now() - started} ms`);
    // The server ends a closed socket's backend a moment later.
    let left = -1;
    for (let i = 0; i < 40 && left !== 0; i++) {
      if (i) await new Promise((r) => setTimeout(r, 50));
      left = (await sql.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'shelf-build-queue'")).rows[0]!.n;
    }
    assert.equal(left, 0, 'pg-boss connections left open');
  });
});
