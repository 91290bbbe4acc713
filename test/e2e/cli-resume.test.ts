import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shelfCli, type ShelfCli } from '../helpers/cli.js';
import { startCountingProxy, type CountingProxy } from '../helpers/proxy.js';
import { run } from '../helpers/run.js';
import { makeLargeSif } from '../helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');
const oras = path.join(CLIENTS, 'orasclient');
const MiB = 2 ** 20;
/** Request and response headers of a whole transfer stay well under this. */
const HTTP_OVERHEAD = 256 * 1024;

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/**
 * Transfers through a byte-counting TCP proxy; the shelf process is killed with SIGKILL once
 * part of the bytes went through, and the second run must send only what is missing.
 */
describe('shelf push and pull resume after being killed midway', { concurrency: false }, () => {
  let shelf: TestShelf;
  let proxy: CountingProxy;
  let cli: ShelfCli;
  let work: string;
  let big: string;
  let size: number;

  const transfers = async () => readdir(path.join(cli.env.XDG_CACHE_HOME, 'shelf', 'transfers')).then((f) => f.filter((n) => n.endsWith('.json')), () => []);

  /** Runs shelf with these arguments and SIGKILLs it once the proxy counted `bytes` in that direction. */
  async function killMidway(args: string[], dir: 'up' | 'down', bytes: number): Promise<void> {
    proxy.reset();
    const child = cli.spawn(args);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const outcome = await Promise.race([(dir === 'up' ? proxy.whenUp(bytes) : proxy.whenDown(bytes)).then(() => 'reached' as const), exited.then(() => 'exited' as const)]);
    assert.equal(outcome, 'reached', `shelf ended before ${bytes} bytes went ${dir}: ${stderr}`);
    child.kill('SIGKILL');
    await exited;
  }

  before(async () => {
    shelf = await startShelf({ env: { SHELF_LIBRARY_MULTIPART_PART_SIZE: '1048576' } });
    proxy = await startCountingProxy(shelf.url);
    cli = await shelfCli();
    work = await mkdtemp(path.join(tmpdir(), 'shelf-resume-'));
    big = path.join(work, 'big.sif');
    await makeLargeSif(big, work, 24 * MiB);
    size = (await stat(big)).size;
    assert.equal((await cli.run(['remote', 'add', 'proxied', proxy.url])).code, 0);
    const login = await cli.run(['remote', 'login', 'proxied', '--token-stdin'], { input: ADMIN_TOKEN });
    assert.equal(login.code, 0, login.stderr);
    const orasLogin = await cli.run(['remote', 'login', '--username', 'admin', '--password-stdin', `oras://${new URL(proxy.url).host}`], { input: ADMIN_TOKEN });
    assert.equal(orasLogin.code, 0, orasLogin.stderr);
  });
  after(async () => {
    await proxy?.close();
    await shelf?.stop();
    await rm(work, { recursive: true, force: true });
    if (cli) await rm(cli.home, { recursive: true, force: true });
  });

  test('library:// push: the multipart upload ID and finished parts survive a SIGKILL; only missing parts are sent again', async (t) => {
    const args = ['push', big, 'library://admin/resume/big:v1', '--concurrency', '2'];
    await killMidway(args, 'up', 8 * MiB);
    assert.equal((await transfers()).length, 1, 'the push left its state');

    proxy.reset();
    const again = await cli.run([...args, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const result = JSON.parse(again.stdout) as { resumedFrom: number; uploaded: boolean };
    assert.equal(result.uploaded, true);
    assert.ok(result.resumedFrom >= 4 * MiB, `resumed from ${result.resumedFrom}`);
    assert.ok(proxy.up <= size - result.resumedFrom + HTTP_OVERHEAD, `sent ${proxy.up} bytes for ${size - result.resumedFrom} missing`);
    assert.ok(proxy.up < size, `sent ${proxy.up} of ${size}`);
    t.diagnostic(`library push: ${result.resumedFrom} of ${size} bytes kept; ${proxy.up} bytes sent on resume`);
    assert.deepEqual(await transfers(), []);

    const out = path.join(work, 'libclient.sif');
    const pull = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'pull', 'admin/resume/big:v1', out, '--arch', 'amd64']);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await sha256(out), await sha256(big));
  });

  test('library:// pull: DEST.shelf-part and its chunk list survive a SIGKILL; only missing ranges are fetched again', async (t) => {
    const out = path.join(work, 'pulled.sif');
    const args = ['pull', out, 'library://admin/resume/big:v1', '--arch', 'amd64', '--chunk-size', String(MiB), '--concurrency', '2'];
    await killMidway(args, 'down', 8 * MiB);
    assert.equal(await exists(out), false, 'nothing at the destination before the bytes are verified');
    assert.equal(await exists(`${out}.shelf-part`), true);
    assert.equal(await exists(`${out}.shelf-part.json`), true);

    proxy.reset();
    const again = await cli.run([...args, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const result = JSON.parse(again.stdout) as { resumedFrom: number; transferred: number };
    assert.ok(result.resumedFrom >= 4 * MiB, `resumed from ${result.resumedFrom}`);
    assert.equal(result.transferred, size - result.resumedFrom);
    assert.ok(proxy.down <= size - result.resumedFrom + HTTP_OVERHEAD, `received ${proxy.down} bytes for ${size - result.resumedFrom} missing`);
    t.diagnostic(`library pull: ${result.resumedFrom} of ${size} bytes kept; ${proxy.down} bytes received on resume`);
    assert.equal(await sha256(out), await sha256(big));
    assert.equal(await exists(`${out}.shelf-part`), false);
    assert.equal(await exists(`${out}.shelf-part.json`), false);
  });

  test('oras:// push: the upload session and acknowledged offset survive a SIGKILL; the registry is asked where to go on', async (t) => {
    const ref = `oras://${new URL(proxy.url).host}/admin/resume/oras:v1`;
    const args = ['push', big, ref, '--chunk-size', String(MiB)];
    await killMidway(args, 'up', 8 * MiB);
    assert.equal((await transfers()).length, 1, 'the push left its state');

    proxy.reset();
    const again = await cli.run([...args, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const result = JSON.parse(again.stdout) as { resumedFrom: number };
    assert.ok(result.resumedFrom >= 4 * MiB, `resumed from ${result.resumedFrom}`);
    assert.ok(proxy.up <= size - result.resumedFrom + HTTP_OVERHEAD, `sent ${proxy.up} bytes for ${size - result.resumedFrom} missing`);
    assert.deepEqual(await transfers(), []);
    t.diagnostic(`oras push: ${result.resumedFrom} of ${size} bytes kept; ${proxy.up} bytes sent on resume`);

    const out = path.join(work, 'oras-go.sif');
    const pull = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'pull', `${new URL(shelf.url).host}/admin/resume/oras:v1`, out]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await sha256(out), await sha256(big));
  });

  test('connections cut midway: push and pull retry the broken parts and ranges by themselves', async () => {
    // New bytes: the server must not already hold them.
    const other = path.join(work, 'other.sif');
    await makeLargeSif(other, work, 16 * MiB);
    for (const [args, dir] of [
      [['push', other, 'library://admin/resume/cut:v1', '--concurrency', '2'], 'up'],
      [['pull', path.join(work, 'cut.sif'), 'library://admin/resume/cut:v1', '--arch', 'amd64', '--chunk-size', String(MiB)], 'down'],
    ] as const) {
      proxy.reset();
      const child = cli.spawn([...args]);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const reached = await Promise.race([(dir === 'up' ? proxy.whenUp(6 * MiB) : proxy.whenDown(6 * MiB)).then(() => true), exited.then(() => false)]);
      assert.ok(reached, `${args[0]} ended before 6 MiB went through: ${stderr}`);
      proxy.cut();
      assert.equal(await exited, 0, `${args[0]}: ${stderr}`);
    }
    assert.equal(await sha256(path.join(work, 'cut.sif')), await sha256(other));
  });

  test('a damaged partial download is caught by the hash check and removed', async () => {
    const out = path.join(work, 'damaged.sif');
    const args = ['pull', out, 'library://admin/resume/big:v1', '--arch', 'amd64', '--chunk-size', String(MiB), '--concurrency', '2'];
    await killMidway(args, 'down', 8 * MiB);
    // Flip bytes in the first chunk, which the state lists as finished.
    const h = await open(`${out}.shelf-part`, 'r+');
    await h.write(Buffer.from('garbage!'), 0, 8, 100);
    await h.close();
    const r = await cli.run(args);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /^shelf: downloaded bytes hash to sha256:[0-9a-f]{64}, expected sha256:[0-9a-f]{64}; the partial file was removed\n$/);
    assert.equal(await exists(`${out}.shelf-part`), false);
    const clean = await cli.run(args);
    assert.equal(clean.code, 0, clean.stderr);
    assert.equal(await sha256(out), await sha256(big));
  });
});
