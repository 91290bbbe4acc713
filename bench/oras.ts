import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { run } from '../test/helpers/run.js';
import { makeLargeSif } from '../test/helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, startShelf } from '../test/helpers/shelf.js';

const ORAS = path.join(CLIENTS, 'orasclient');
const GiB = 2 ** 30;
const RUNS = 3;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => (c.end(), resolve(true))).on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** ORAS push and pull of a 1 GiB SIF with the real oras-go client: Shelf against Debian's docker-registry 2.8.2. */
export async function benchOras(workDir: string): Promise<string[]> {
  await mkdir(workDir, { recursive: true });
  const sif = path.join(workDir, 'oras-1g.sif');
  await makeLargeSif(sif, workDir, GiB - 64 * 1024);
  const size = GiB - 64 * 1024;
  const expected = await sha256File(sif);

  const regPort = await freePort();
  const regDir = path.join(workDir, 'registry');
  const regConfig = path.join(workDir, 'registry.yml');
  await writeFile(
    regConfig,
    `version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: ${regDir}}\n  delete: {enabled: true}\nhttp: {addr: "127.0.0.1:${regPort}"}\n`,
  );
  const registry = spawn('/usr/bin/docker-registry', ['serve', regConfig], { stdio: 'ignore' });
  const shelf = await startShelf({ dataDir: path.join(workDir, 'shelf-data') });
  try {
    await waitForPort(regPort);
    const targets = {
      shelf: { host: new URL(shelf.url).host, auth: ['--user', 'admin', '--pass', ADMIN_TOKEN] },
      distribution: { host: `127.0.0.1:${regPort}`, auth: [] as string[] },
    };
    const times: Record<string, { push: number[]; pull: number[] }> = { shelf: { push: [], pull: [] }, distribution: { push: [], pull: [] } };
    for (let i = 0; i < RUNS; i++) {
      for (const name of ['distribution', 'shelf'] as const) {
        const t = targets[name];
        const ref = `${t.host}/admin/bench/run${i}:latest`;
        let start = process.hrtime.bigint();
        const push = await run(ORAS, [...t.auth, 'push', sif, ref], { timeoutMs: 600_000 });
        if (push.code !== 0) throw new Error(`${name} push failed: ${push.stderr}`);
        times[name]!.push.push(Number(process.hrtime.bigint() - start) / 1e9);
        const out = path.join(workDir, `pulled-${name}.sif`);
        start = process.hrtime.bigint();
        const pull = await run(ORAS, [...t.auth, 'pull', ref, out], { timeoutMs: 600_000 });
        if (pull.code !== 0) throw new Error(`${name} pull failed: ${pull.stderr}`);
        times[name]!.pull.push(Number(process.hrtime.bigint() - start) / 1e9);
        if ((await sha256File(out)) !== expected) throw new Error(`${name}: pulled bytes differ`);
        await rm(out);
      }
    }
    const mbps = (s: number) => size / 1e6 / s;
    const lines: string[] = [];
    for (const op of ['push', 'pull'] as const) {
      const s = median(times.shelf![op]);
      const d = median(times.distribution![op]);
      lines.push(
        `oras ${op} 1 GiB SIF (oras-go client, median of ${RUNS}, alternating): Shelf ${mbps(s).toFixed(0)} MB/s (${s.toFixed(2)} s), ` +
          `docker-registry 2.8.2 ${mbps(d).toFixed(0)} MB/s (${d.toFixed(2)} s): ratio ${(d / s).toFixed(2)}× [target ≥ 1.20×]`,
      );
    }
    lines.push('  (whole client command: includes the client hashing the file and its own verification on pull)');
    return lines;
  } finally {
    registry.kill();
    await shelf.stop();
    await rm(sif, { force: true });
    await rm(regDir, { recursive: true, force: true });
  }
}
