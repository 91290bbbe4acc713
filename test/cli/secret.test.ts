import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openMetaDb } from '../../src/meta/db.js';
import { SHELF_CLI, shelfCli, type ShelfCli } from '../helpers/cli.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, startShelf, type TestShelf } from '../helpers/shelf.js';

/** A download token as the server makes them, signed with `key`. */
const forge = (key: Buffer, subject: string) => {
  const payload = Buffer.from(JSON.stringify({ s: subject, e: Math.floor(Date.now() / 1000) + 600 })).toString('base64url');
  return `${payload}.${createHmac('sha256', key).update(payload).digest('base64url')}`;
};

/**
 * The key of capability tokens (download links, registry tokens) lives outside the database: a
 * key file in the data folder (0600, made on first start, rotatable) or `SHELF_SECRET`. A key an
 * older version kept in `settings` is moved into the key file and deleted from the database.
 */
for (const db of DB_KINDS) {
  describe(`capability key outside the database (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    /** The first server: its stop() removes the data folder and database the restarts share. */
    let original: TestShelf;
    let cli: ShelfCli;
    let digest = '';
    const keyFile = () => path.join(shelf.dataDir, 'secret.key');
    const download = (base: string, token: string) => fetch(`${base}/v1/imagefile/_download/${token}`);
    const restart = async (env: Record<string, string> = {}) => {
      await shelf.kill();
      return startShelf({ db, dataDir: shelf.dataDir, dbUrl: shelf.dbUrl, env });
    };
    const settingsRows = async () => {
      const meta = await openMetaDb(shelf.dbUrl);
      try {
        return await meta.db.selectFrom('settings').selectAll().execute();
      } finally {
        await meta.close();
      }
    };

    before(async () => {
      shelf = original = await startShelf({ db });
      cli = await shelfCli();
      const push = await run(path.join(CLIENTS, 'libclient'), ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', path.join(FIXTURES, 'minimal-amd64.sif'), 'admin/keys/img:latest']);
      assert.equal(push.code, 0, push.stderr);
      digest = `sha256:${createHash('sha256').update(await readFile(path.join(FIXTURES, 'minimal-amd64.sif'))).digest('hex')}`;
    });
    after(async () => {
      await shelf?.stop();
      await original?.stop();
    });

    test('first start: a 0600 key file in the data folder, nothing in the database; a forged token fails', async () => {
      const info = await stat(keyFile());
      assert.equal(info.mode & 0o777, 0o600);
      const key = Buffer.from((await readFile(keyFile(), 'utf8')).split('\n')[0]!, 'base64url');
      assert.equal(key.length, 32);
      assert.deepEqual(await settingsRows(), []);
      assert.equal((await download(shelf.url, forge(key, digest))).status, 200);
      const forged = await download(shelf.url, forge(randomBytes(32), digest));
      assert.equal(forged.status, 404);
    });

    test('a key older versions kept in settings moves into the key file and leaves the database', async () => {
      const legacy = randomBytes(32).toString('base64url');
      const meta = await openMetaDb(shelf.dbUrl);
      await meta.db.insertInto('settings').values({ key: 'capability_key', value: legacy }).execute();
      await meta.close();
      await shelf.kill();
      await rm(keyFile());
      shelf = await restart();
      assert.deepEqual(await settingsRows(), []);
      assert.equal((await readFile(keyFile(), 'utf8')).trim(), legacy);
      assert.equal((await stat(keyFile())).mode & 0o777, 0o600);
      // Links signed before the upgrade still work.
      assert.equal((await download(shelf.url, forge(Buffer.from(legacy, 'base64url'), digest))).status, 200);
    });

    test('shelf admin secret rotate: new links use the new key, old ones work until the next rotation', async () => {
      const first = Buffer.from((await readFile(keyFile(), 'utf8')).trim(), 'base64url');
      const oldLink = forge(first, digest);
      await shelf.kill();
      const rotate = await cli.run(['admin', 'secret', 'rotate', '--data', shelf.dataDir]);
      assert.equal(rotate.code, 0, rotate.stderr);
      const lines = (await readFile(keyFile(), 'utf8')).trim().split('\n');
      assert.equal(lines.length, 2);
      assert.equal(lines[1], first.toString('base64url'));
      shelf = await restart();
      assert.equal((await download(shelf.url, oldLink)).status, 200, 'previous key still accepted');
      // A link the server makes now is signed with the new key.
      const redirect = await fetch(`${shelf.url}/v1/imagefile/admin/keys/img:latest?arch=amd64`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, redirect: 'manual' });
      const token = redirect.headers.get('location')!.split('/').pop()!;
      const payload = token.split('.')[0]!;
      assert.equal(token.split('.')[1], createHmac('sha256', Buffer.from(lines[0]!, 'base64url')).update(payload).digest('base64url'));
      await shelf.kill();
      assert.equal((await cli.run(['admin', 'secret', 'rotate', '--data', shelf.dataDir])).code, 0);
      shelf = await restart();
      assert.equal((await download(shelf.url, oldLink)).status, 404, 'two rotations later the first key is gone');
      assert.equal((await download(shelf.url, token)).status, 200);
    });

    test('SHELF_SECRET (and SHELF_SECRET_PREVIOUS) instead of the file; rotate refers to it', async () => {
      const secret = 'a-configured-secret-for-every-node-0123456789';
      const previous = 'the-secret-before-the-last-rotation-012345';
      shelf = await restart({ SHELF_SECRET: secret, SHELF_SECRET_PREVIOUS: previous });
      assert.equal((await download(shelf.url, forge(Buffer.from(secret), digest))).status, 200);
      assert.equal((await download(shelf.url, forge(Buffer.from(previous), digest))).status, 200);
      const fileKey = Buffer.from((await readFile(keyFile(), 'utf8')).split('\n')[0]!, 'base64url');
      assert.equal((await download(shelf.url, forge(fileKey, digest))).status, 404, 'the file is not used when a key is configured');
      const rotate = await run(process.execPath, [SHELF_CLI, 'admin', 'secret', 'rotate', '--data', shelf.dataDir], { env: { ...cli.env, SHELF_SECRET: secret } });
      assert.equal(rotate.code, 2);
      assert.match(rotate.stderr, /SHELF_SECRET/);
    });
  });
}
