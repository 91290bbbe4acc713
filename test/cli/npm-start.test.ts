import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { eventually } from '../helpers/browser.js';
import { ROOT } from '../helpers/shelf.js';

/** `npm start` in the checkout, on a free port; resolves with npm's process and the server's URL. */
async function npmStart(data: string) {
  const npm = spawn('npm', ['start', '--silent', '--', '--listen', '127.0.0.1:0', '--data', data], {
    cwd: ROOT,
    env: { ...process.env, SHELF_BOOTSTRAP_TOKEN: 'npm-start-test-token-0123456789', SHELF_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  npm.stdout.on('data', (d: Buffer) => (out += d.toString()));
  npm.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const url = await eventually(async () => {
    const m = /Shelf listening on (http:\/\/\S+)/.exec(out);
    if (!m) throw new Error(`not started:\n${out}`);
    return m[1]!;
  }, 60_000);
  return { npm, url };
}

const answers = async (url: string) => (await fetch(`${url}/version`).then((r) => r.status).catch(() => 0)) === 200;

for (const [how, signal] of [['killed with SIGKILL (it forwards nothing)', 'SIGKILL'], ['stopped with SIGTERM', 'SIGTERM'], ['hung up (SIGHUP: npm exits, the server re-reads TLS and then sees its parent gone)', 'SIGHUP']] as const) {
  test(`npm start: the server stops when npm is ${how}`, async () => {
    const data = await mkdtemp(path.join(tmpdir(), 'shelf-npm-start-'));
    try {
      const { npm, url } = await npmStart(data);
      assert.ok(await answers(url));
      npm.kill(signal);
      await eventually(async () => assert.equal(await answers(url), false, 'the server still answers'), 15_000);
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  });
}
