import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { ROOT } from '../helpers/shelf.js';
import { makeCa, type TestCa } from '../helpers/tls.js';

const CLI = path.join(ROOT, 'dist/cli/main.js');
const EXAMPLES = path.join(ROOT, 'examples');

/** `shelf admin config check`, with no SHELF_* variable of the calling shell leaking in. */
function check(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SHELF_')));
  return run('env', ['-i', ...Object.entries({ ...clean, ...env }).map(([k, v]) => `${k}=${v}`), process.execPath, CLI, 'admin', 'config', 'check', ...args]);
}

describe('shelf admin config check', () => {
  let dir: string;
  let ca: TestCa;
  let pair: { cert: string; key: string };
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'shelf-config-'));
    ca = await makeCa();
    pair = await ca.issue('server', { dns: ['localhost'], ip: ['127.0.0.1'] });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(ca.dir, { recursive: true, force: true });
  });

  test('every file in examples/ passes (TLS files pointed at a real pair)', async () => {
    const files = (await readdir(EXAMPLES)).filter((f) => f.endsWith('.yaml'));
    assert.ok(files.length >= 7, files.join(' '));
    for (const name of files) {
      const text = (await readFile(path.join(EXAMPLES, name), 'utf8'))
        .replaceAll('/etc/shelf/tls/fullchain.pem', pair.cert)
        .replaceAll('/etc/shelf/tls/privkey.pem', pair.key);
      const file = path.join(dir, name);
      await writeFile(file, text);
      const r = await check(['--config', file]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.match(r.stdout, /^configuration OK: listen /, name);
    }
  });

  test('mistakes exit 2 with one line naming the setting; nothing is started', async () => {
    const cases: Array<[string, RegExp]> = [
      ['listen: nowhere\n', /listen: must be HOST:PORT/],
      ['lisen: 127.0.0.1:8080\n', /Unrecognized key.*lisen/i],
      ['gc:\n  grace: soon\n', /gc\.grace: not a duration/],
      ['blobs: ftp://x\n', /blobs: unsupported scheme ftp:/],
      ['blobs: s3://bucket?colour=red\n', /unknown s3 option "colour"/],
      ['tls:\n  cert: /nonexistent/cert.pem\n  key: /nonexistent/key.pem\n', /cannot read TLS certificate \/nonexistent\/cert\.pem/],
      [`tls:\n  cert: ${pair.cert}\n  key: ${pair.cert}\n`, /do not make a usable pair/],
      ['metrics:\n  token: short\n', /metrics\.token: must be at least 16 characters/],
      ['ldap:\n  url: http://ldap\n  userBase: dc=x\n', /ldap\.url: must be ldap:\/\//],
      ['oidc:\n  issuer: login.example\n  clientId: shelf\n', /oidc\.issuer: must be an http/],
      ['oidc:\n  issuer: https://login.example\n  clientId: shelf\n  adminClam: admin\n', /Unrecognized key.*adminClam/i],
      ['[not, a, mapping]\n', /must hold a YAML mapping/],
      ['blobsOffload: sendfile\n', /blobsOffload: Invalid option/i],
      ['blobsOffload: x-accel\nblobs: s3://bucket\n', /blobsOffload: x-accel needs the filesystem blob store/],
      ['blobsOffloadPrefix: _blobs\n', /blobsOffloadPrefix: must be a URL path that starts and ends with \//],
    ];
    for (const [text, message] of cases) {
      const file = path.join(dir, 'bad.yaml');
      await writeFile(file, text);
      const r = await check(['--config', file]);
      assert.equal(r.code, 2, `${text} → ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message, text);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${text}: ${r.stderr}`);
      assert.equal(r.stdout, '');
    }
    const missing = await check(['--config', path.join(dir, 'absent.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read config file/);
  });

  test('the environment counts as serve would read it; SHELF_CONFIG names the file', async () => {
    const file = path.join(dir, 'env.yaml');
    await writeFile(file, 'listen: 127.0.0.1:8080\n');
    const bad = await check([], { SHELF_CONFIG: file, SHELF_GC_INTERVAL: 'often' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /gc\.interval: not a duration/);
    const ok = await check([], { SHELF_CONFIG: file });
    assert.equal(ok.code, 0, ok.stderr);
  });
});
