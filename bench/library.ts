import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { makeLargeSif } from '../test/helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, startShelf } from '../test/helpers/shelf.js';
import type { Baseline } from './baseline.js';

const LIBCLIENT = path.join(CLIENTS, 'libclient');
const RUNS = 3;
const SIZE = 2 ** 30 - 64 * 1024;

interface Timed {
  total: number;
  /** Seconds between the first and the last trace line matching the window. */
  window: number;
}

/** Runs libclient with --trace, timestamping every line, and returns the whole time and the transfer window. */
export function timedClient(args: string[], windowStart: RegExp, windowEnd: RegExp): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let first: number | null = null;
    let last: number | null = null;
    let err = '';
    const child = spawn(LIBCLIENT, ['--trace', ...args]);
    const onLine = (line: string) => {
      const now = performance.now();
      if (first === null && windowStart.test(line)) first = now;
      if (windowEnd.test(line)) last = now;
    };
    let buf = '';
    const feed = (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      err = (err + d.toString()).slice(-4000);
    };
    child.stdout.on('data', feed);
    child.stderr.on('data', feed);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`libclient ${args[2]} failed: ${err}`));
      if (first === null || last === null) return reject(new Error(`no transfer seen in the trace of ${args[2]}`));
      resolve({ total: (performance.now() - started) / 1000, window: (last - first) / 1000 });
    });
  });
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file, { highWaterMark: 4 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mbps = (s: number) => SIZE / 1e6 / s;

/** Library push (v2 multipart) and pull (303 + concurrent ranged download) of a 1 GiB SIF with the real client. */
export async function benchLibrary(workDir: string, baseline: Baseline): Promise<string[]> {
  await mkdir(workDir, { recursive: true });
  const sif = path.join(workDir, 'library-1g.sif');
  await makeLargeSif(sif, workDir, SIZE);
  const shelf = await startShelf({ dataDir: path.join(workDir, 'shelf-data') });
  const push: Timed[] = [];
  const pull: Timed[] = [];
  const pullToMemory: Timed[] = [];
  const tmpfs = existsSync('/dev/shm') ? '/dev/shm' : null;
  try {
    for (let i = 0; i < RUNS; i++) {
      // Different bytes each run (inside the partition), or the push would find them already stored.
      const handle = await open(sif, 'r+');
      await handle.write(Buffer.from(`run ${i} ${Date.now()}`), 0, undefined, SIZE + 32_000 - 64);
      await handle.close();
      const expected = await sha256File(sif);
      push.push(
        await timedClient(['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', sif, `admin/bench/run${i}:latest`], /--> PUT .*\/_upload\/.+\/1\b/, /<-- 200 .*_multipart_complete/),
      );
      const out = path.join(workDir, `pulled-${i}.sif`);
      pull.push(await timedClient(['--url', shelf.url, 'pull', `admin/bench/run${i}:latest`, out, '--arch', 'amd64'], /--> GET .*\/v1\/imagefile\//, /<-- 206/));
      if ((await sha256File(out)) !== expected) throw new Error('pulled bytes differ');
      await rm(out);
      if (tmpfs) {
        // The same pull into memory: what the server delivers when the client's disk is not the limit.
        const mem = path.join(tmpfs, `shelf-bench-${process.pid}.sif`);
        pullToMemory.push(await timedClient(['--url', shelf.url, 'pull', `admin/bench/run${i}:latest`, mem, '--arch', 'amd64', '--no-hash-check'], /--> GET .*\/v1\/imagefile\//, /<-- 206/));
        await rm(mem);
      }
    }
  } finally {
    await shelf.stop();
    await rm(sif, { force: true });
  }
  const limit = Math.min(baseline.sha256MBps, baseline.diskWriteMBps);
  const pushWindow = mbps(median(push.map((p) => p.window)));
  const pullWindow = mbps(median(pull.map((p) => p.window)));
  return [
    `library push 1 GiB SIF (v2 multipart, real client, median of ${RUNS}): upload ${pushWindow.toFixed(0)} MB/s = ${(pushWindow / limit).toFixed(2)} × min(sha256 ${baseline.sha256MBps.toFixed(0)}, disk ${baseline.diskWriteMBps.toFixed(0)}) MB/s [target ≥ 0.80]`,
    `  whole push command ${mbps(median(push.map((p) => p.total))).toFixed(0)} MB/s (includes the client hashing the file with SHA-256 and MD5 before it uploads)`,
    `library pull 1 GiB SIF (303 + 3 × 5 MiB ranged parts, real client, median of ${RUNS}): download ${(pullWindow / 1000).toFixed(2)} GB/s [target ≥ 1 GB/s]`,
    `  whole pull command ${mbps(median(pull.map((p) => p.total))).toFixed(0)} MB/s (includes the client's SHA-256 check of the file)`,
    ...(pullToMemory.length
      ? [`  the same pull into tmpfs: ${(mbps(median(pullToMemory.map((p) => p.window))) / 1000).toFixed(2)} GB/s (the client writing to this machine's disk is the limit above)`]
      : []),
  ];
}
