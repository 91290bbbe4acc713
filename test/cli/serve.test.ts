import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { eventually } from '../helpers/browser.js';
import { run } from '../helpers/run.js';
import { ROOT, startShelf } from '../helpers/shelf.js';

const shelfBin = path.join(ROOT, 'dist/cli/main.js');

test('a wrong setting stops `shelf serve` with one clear line, exit 2', async () => {
  for (const [args, env, pattern] of [
    [['--listen', 'nonsense'], {}, /^shelf: invalid configuration: listen: must be HOST:PORT/],
    [['--public-url', 'ftp://x'], {}, /publicUrl: must be an http/],
    [[], { SHELF_LIBRARY_MULTIPART_PART_SIZE: 'huge' }, /library\.multipartPartSize: not a byte size/],
    [['--config', '/nonexistent/shelf.yaml'], {}, /cannot read config file/],
    [['--blobs', 'ftp://x/y'], {}, /^shelf: blobs: unsupported scheme ftp:/],
    [['--blobs', 's3://bucket?bogus=1'], {}, /^shelf: blobs: unknown s3 option "bogus"/],
    [[], { SHELF_BLOBS: 's3://bucket?endpoint=nope' }, /^shelf: blobs: endpoint must be an http\(s\) URL/],
    [[], { SHELF_BLOBS_PUBLIC_ENDPOINT: 'nope' }, /blobsPublicEndpoint: must be an http/],
  ] as const) {
    const r = await run(process.execPath, [shelfBin, 'serve', ...args], { env: { ...env } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('first start without SHELF_BOOTSTRAP_TOKEN prints a one-time admin token that works; a restart does not', async () => {
  const data = await mkdtemp(path.join(tmpdir(), 'shelf-boot-'));
  try {
    const first = await startShelf({ dataDir: data, env: { SHELF_BOOTSTRAP_TOKEN: '' } });
    const token = /API token, shown only this once:\s+(\S+)/.exec(first.output())?.[1];
    assert.ok(token, first.output());
    assert.match(first.output(), /Shelf listening on http:\/\/127\.0\.0\.1:\d+/);
    // What to do next: a password for the web UI (with a command that works as printed), where to sign in, Apptainer.
    await eventually(async () => assert.match(first.output(), /Next steps:[\s\S]*apptainer remote add/), 10_000).catch(async (err: unknown) => {
      await first.kill();
      throw err;
    });
    const passwd = new RegExp(`shelf admin user passwd admin --url ${first.url} --token ${token}`);
    assert.match(first.output(), passwd);
    assert.match(first.output(), new RegExp(`Sign in at ${first.url}/signin`));
    assert.match(first.output(), new RegExp(`apptainer remote add --insecure shelf ${first.url}`));
    const cli = await run(process.execPath, [shelfBin, 'admin', 'user', 'passwd', 'admin', '--url', first.url, '--token', token, '--password-stdin'], { input: 'a-first-password' });
    assert.equal(cli.code, 0, cli.stderr);
    const login = await fetch(`${first.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 'a-first-password' }) });
    assert.equal(login.status, 200);
    const status = await fetch(`${first.url}/v1/token-status`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(status.status, 200);
    assert.equal(((await status.json()) as { data: { username: string } }).data.username, 'admin');
    await first.kill();
    const second = await startShelf({ dataDir: data, env: { SHELF_BOOTSTRAP_TOKEN: '' } });
    assert.doesNotMatch(second.output(), /shown only this once|Next steps/);
    assert.equal((await fetch(`${second.url}/v1/token-status`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    await second.kill();
  } finally {
    await rm(data, { recursive: true, force: true });
  }
});

test('`shelf --help` lists serve; unknown commands fail', async () => {
  const help = await run(process.execPath, [shelfBin, '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /serve/);
  const bad = await run(process.execPath, [shelfBin, 'frobnicate']);
  assert.notEqual(bad.code, 0);
});
