import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shelfCli, type ShelfCli } from '../helpers/cli.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');
const sha256hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

for (const db of DB_KINDS) {
  describe(`shelf admin backup / restore of the metadata, checked by doctor (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let cli: ShelfCli;
    let work: string;
    const lib = (args: string[]) => run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, ...args]);

    before(async () => {
      shelf = await startShelf({ db });
      cli = await shelfCli();
      work = await mkdtemp(path.join(tmpdir(), 'shelf-backup-'));
    });
    after(async () => {
      await shelf?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('a backup taken while the server runs restores the library as it was; doctor then names what the store holds beyond it', async () => {
      const first = path.join(FIXTURES, 'minimal-amd64.sif');
      const second = path.join(FIXTURES, 'minimal-arm64.sif');
      assert.equal((await lib(['push', first, 'admin/backup/first:v1'])).code, 0);

      const file = path.join(work, `metadata.${db === 'sqlite' ? 'sqlite' : 'pgdump'}`);
      const backup = await cli.run(['admin', 'backup', '--data', shelf.dataDir, '--db', shelf.dbUrl, '--out', file]);
      assert.equal(backup.code, 0, backup.stderr);
      assert.match(backup.stdout, new RegExp(`backed up ${db === 'sqlite' ? 'SQLite' : 'PostgreSQL'} metadata to `));

      // After the backup: another image, and the first one deleted.
      const push = await lib(['push', second, 'admin/backup/second:v1']);
      assert.equal(push.code, 0, push.stderr);
      assert.equal((await lib(['delete', 'admin/backup/first:v1', '--arch', 'amd64'])).code, 0);

      const busy = await cli.run(['admin', 'restore', '--data', shelf.dataDir, '--db', shelf.dbUrl, '--from', path.join(work, 'nothing')]);
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /cannot read/);

      await shelf.kill();
      const restore = await cli.run(['admin', 'restore', '--data', shelf.dataDir, '--db', shelf.dbUrl, '--from', file]);
      assert.equal(restore.code, 0, restore.stderr);
      shelf = await startShelf({ dataDir: shelf.dataDir, dbUrl: shelf.dbUrl });

      const out = path.join(work, 'first.sif');
      const pull = await lib(['pull', 'admin/backup/first:v1', out, '--arch', 'amd64']);
      assert.equal(pull.code, 0, pull.stderr);
      assert.deepEqual(await readFile(out), await readFile(first));
      assert.notEqual((await lib(['pull', 'admin/backup/second:v1', path.join(work, 'second.sif'), '--arch', 'arm64'])).code, 0, 'pushed after the backup: gone');

      const doctor = await cli.run(['admin', 'doctor', '--data', shelf.dataDir, '--db', shelf.dbUrl]);
      assert.equal(doctor.code, 1, 'the bytes pushed after the backup are not in the restored metadata');
      const secondDigest = `sha256:${sha256hex(await readFile(second))}`;
      assert.match(doctor.stdout, new RegExp(`^orphan\\t${secondDigest}\\t`, 'm'));
      assert.doesNotMatch(doctor.stdout, /^missing\t/m, 'every blob the backup names is in the store');
      const gc = await cli.run(['admin', 'gc', '--url', shelf.url, '--token', ADMIN_TOKEN]);
      assert.equal(gc.code, 0, gc.stderr);
    });

    test('a backup of the wrong kind, or a file that is none, is refused before anything changes', async () => {
      const junk = path.join(work, 'junk');
      await writeFile(junk, 'not a backup at all');
      const r = await cli.run(['admin', 'restore', '--data', shelf.dataDir, '--db', shelf.dbUrl, '--from', junk]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /neither a SQLite snapshot nor a pg_dump archive/);
      const other = db === 'sqlite' ? 'postgres' : 'sqlite';
      const fake = path.join(work, 'other-kind');
      await writeFile(fake, other === 'sqlite' ? Buffer.from('SQLite format 3\0rest') : Buffer.from('PGDMPrest'));
      const wrong = await cli.run(['admin', 'restore', '--data', shelf.dataDir, '--db', shelf.dbUrl, '--from', fake]);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /backup; the target database is/);
      const pull = await lib(['pull', 'admin/backup/first:v1', path.join(work, 'again.sif'), '--arch', 'amd64']);
      assert.equal(pull.code, 0, 'the library is untouched');
    });
  });
}
