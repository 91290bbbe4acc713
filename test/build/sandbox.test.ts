import assert from 'node:assert/strict';
import { chmod, copyFile, lchown, mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import net from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cgroupLimitsAvailable, runSandboxed, type SandboxOptions } from '../../src/build/sandbox.js';
import { ID_START, withBuilderIds } from '../helpers/build-client.js';

/** An address of this machine other than loopback: what a build with network may reach. */
function hostAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('the machine has no non-loopback IPv4 address to test egress with');
}

/**
 * The build sandbox itself (`runSandboxed`), as the builder runs %post in it: a busybox root,
 * no network unless asked, egress through slirp4netns that never reaches the host's loopback,
 * the wall-clock limit and cancel, and cgroup v2 limits where the machine has them.
 */
describe('build sandbox', { concurrency: false }, () => {
  let dir: string;
  let root: string;
  let dropIds: () => Promise<void>;
  let server: net.Server;
  let port = 0;
  const received: string[] = [];

  before(async () => {
    dropIds = await withBuilderIds();
    dir = await mkdtemp(path.join(tmpdir(), 'shelf-sandbox-'));
    await chmod(dir, 0o755);
    root = path.join(dir, 'root');
    for (const d of ['bin', 'dev', 'proc', 'tmp', 'etc']) await mkdir(path.join(root, d), { recursive: true });
    await copyFile('/usr/bin/busybox', path.join(root, 'bin/busybox'));
    await chmod(path.join(root, 'bin/busybox'), 0o755);
    for (const tool of ['sh', 'nc', 'sleep', 'head', 'tr', 'echo', 'cat', 'wc']) await symlink('busybox', path.join(root, 'bin', tool));
    // Owned by the build's root, as a rootfs the builder unpacks is.
    for (const entry of ['', ...(await readdir(root, { recursive: true }))]) await lchown(path.join(root, entry), ID_START, ID_START);
    // Listens on every address: reachable as the host's address, and as 127.0.0.1 on the host.
    server = net.createServer((socket) => {
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('end', () => {
        received.push(text.trim());
        socket.end();
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    await new Promise((r) => server?.close(r));
    await rm(dir, { recursive: true, force: true });
    await dropIds?.();
  });

  async function sandbox(script: string, extra: Partial<SandboxOptions> = {}): Promise<{ output: string; code: number | null; timedOut: boolean; cancelled: boolean; seconds: number }> {
    let output = '';
    const started = Date.now();
    const r = await runSandboxed({
      mode: 'image',
      root,
      command: ['/bin/sh', '-c', script],
      idBase: ID_START,
      timeoutMs: 20_000,
      stateDir: dir,
      onOutput: (chunk) => (output += chunk.toString()),
      ...extra,
    });
    assert.equal(r.setupFailed, false, output);
    return { output, code: r.code, timedOut: r.timedOut, cancelled: r.cancelled, seconds: (Date.now() - started) / 1000 };
  }

  test('without network nothing outside the sandbox is reachable, not even the host address', async () => {
    received.length = 0;
    const r = await sandbox(`echo no-network | nc -w 2 ${hostAddress()} ${port}; echo "rc=$?"; echo loop | nc -w 2 127.0.0.1 ${port}; echo "rc=$?"`);
    assert.match(r.output, /rc=[1-9]/);
    assert.doesNotMatch(r.output, /rc=0/);
    assert.deepEqual(received, []);
  });

  test("with network (slirp4netns) the build reaches other hosts' addresses, never the host's loopback", async () => {
    received.length = 0;
    const script = [
      `echo egress | nc -w 3 ${hostAddress()} ${port}; echo "host=$?"`,
      // slirp4netns's alias for the host's loopback, refused with --disable-host-loopback.
      `echo alias | nc -w 2 10.0.2.2 ${port}; echo "alias=$?"`,
      // The sandbox's own loopback: nothing of the host listens there.
      `echo own-loopback | nc -w 2 127.0.0.1 ${port}; echo "loop=$?"`,
      'cat /etc/resolv.conf',
    ].join('\n');
    const r = await sandbox(script, { network: true });
    assert.match(r.output, /host=0/, r.output);
    assert.doesNotMatch(r.output, /alias=0/, r.output);
    assert.doesNotMatch(r.output, /loop=0/, r.output);
    assert.match(r.output, /nameserver 10\.0\.2\.3/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(received, ['egress']);
  });

  test('the wall-clock limit kills the whole sandbox', async () => {
    const r = await sandbox('sleep 60 & sleep 60; echo finished', { timeoutMs: 1500 });
    assert.equal(r.timedOut, true);
    assert.doesNotMatch(r.output, /finished/);
    assert.ok(r.seconds < 10, `stopped after ${r.seconds} s`);
  });

  test('a cancel stops it at once', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 500);
    const r = await sandbox('sleep 60; echo finished', { signal: abort.signal });
    assert.equal(r.cancelled, true);
    assert.doesNotMatch(r.output, /finished/);
    assert.ok(r.seconds < 10, `stopped after ${r.seconds} s`);
  });

  test('cgroup limits (v2, or the v1 controllers): past the memory limit a build is killed; within it, it runs', async () => {
    assert.ok(await cgroupLimitsAvailable(), 'this machine lets the builder use cgroups (v2 delegated, or v1 controllers)');
    const big = await sandbox(`x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo "survived $(echo "$x" | wc -c)"`, { limits: { memory: 32 * 2 ** 20, pids: 64, cpus: 1 } });
    assert.doesNotMatch(big.output, /survived/);
    assert.notEqual(big.code, 0);
    const small = await sandbox(`x=$(head -c 2000000 /dev/zero | tr '\\0' a); echo "survived $(echo "$x" | wc -c)"`, { limits: { memory: 32 * 2 ** 20, pids: 64, cpus: 1 } });
    assert.match(small.output, /survived 2000001/);
    assert.equal(small.code, 0);
  });

  test('cgroup pids limit: a fork bomb stops at it', async () => {
    const r = await sandbox('i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done; echo spawned-all', { limits: { pids: 40 }, timeoutMs: 30_000 });
    assert.match(r.output, /can't fork|Resource temporarily unavailable|Cannot allocate/i, r.output.slice(0, 500));
  });
});
