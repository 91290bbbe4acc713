import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/shelf.js';
import { makeCa } from '../helpers/tls.js';
import { run } from '../helpers/run.js';

/**
 * The deployment files in docs/ are what operators copy: Debian's nginx accepts the front-end
 * configurations as they are (only the certificate paths point at a test pair), and systemd accepts
 * the unit (only the shelf executable's path points at one that exists here).
 */
for (const file of ['docs/nginx.conf', 'examples/nginx-offload.conf']) {
  test(`${file} passes \`nginx -t\` of the Debian nginx`, () => nginxTest(file));
}

async function nginxTest(file: string): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'shelf-nginx-conf-'));
  try {
    const ca = await makeCa();
    const pair = await ca.issue('shelf.example.org', { dns: ['shelf.example.org'], ip: [] });
    const site = (await readFile(path.join(ROOT, file), 'utf8'))
      .replace('/etc/letsencrypt/live/shelf.example.org/fullchain.pem', pair.cert)
      .replace('/etc/letsencrypt/live/shelf.example.org/privkey.pem', pair.key);
    assert.match(site, new RegExp(pair.cert.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'the certificate paths were the ones replaced');
    await writeFile(path.join(dir, 'site.conf'), site);
    await writeFile(path.join(dir, 'nginx.conf'), `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${dir}/body;\n  include ${dir}/site.conf;\n}\n`);
    const r = await run('nginx', ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /test is successful/);
    await rm(ca.dir, { recursive: true, force: true });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('docs/shelf.service passes `systemd-analyze verify`', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'shelf-unit-'));
  try {
    const shelf = path.join(dir, 'shelf');
    await writeFile(shelf, '#!/bin/sh\nexit 0\n');
    await chmod(shelf, 0o755);
    const unit = (await readFile(path.join(ROOT, 'docs/shelf.service'), 'utf8')).replaceAll('/usr/bin/shelf', shelf);
    assert.ok(unit.includes(`ExecStart=${shelf} serve`));
    await writeFile(path.join(dir, 'shelf.service'), unit);
    const r = await run('systemd-analyze', ['verify', path.join(dir, 'shelf.service')]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stderr, /shelf\.service:.*(unknown|invalid|Failed|not executable)/i);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
