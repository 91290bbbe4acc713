import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { makeLargeSif } from '../test/helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, startShelf } from '../test/helpers/shelf.js';
import { hashAndWriteMBps } from './baseline.js';
import { median } from './proc.js';

const LIBCLIENT = path.join(CLIENTS, 'libclient');
const RUNS = Number(process.env.LIBRARY_RUNS ?? 3);
/** Image sizes in GiB (SIZES=1,4 by default); each SIF is 64 KiB short of it. */
const SIZES = (process.env.SIZES ?? '1,4').split(',').map(Number);
const GiB = 2 ** 30;

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

interface Run {
  push: Timed;
  pull: Timed;
  /** The limits measured just before each: hash + durable write, hash + cached write (MB/s). */
  pushLimit: number;
  pullLimit: number;
  pullToMemory?: Timed;
}

/** Push then pull `runs` times an image of `size` bytes, each beside its limit measured just before it. */
async function measureSize(workDir: string, shelfUrl: string, size: number, tag: string): Promise<Run[]> {
  const sif = path.join(workDir, `library-${tag}.sif`);
  await makeLargeSif(sif, workDir, size);
  // makeLargeSif leaves its partition file; at 4 GiB it matters.
  for (const f of await readdir(workDir)) if (f.startsWith('part-')) await rm(path.join(workDir, f), { force: true });
  const tmpfs = existsSync('/dev/shm') && size <= 2 * GiB ? '/dev/shm' : null;
  const runs: Run[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      // Different bytes each run (inside the partition), or the push would find them already stored.
      const handle = await open(sif, 'r+');
      await handle.write(Buffer.from(`run ${i} ${Date.now()}`), 0, undefined, size + 32_000 - 64);
      await handle.close();
      const expected = await sha256File(sif);
      const ref = `admin/bench/${tag}-run${i}:latest`;
      const pushLimit = await hashAndWriteMBps(workDir, size, true);
      const push = await timedClient(['--url', shelfUrl, '--token', ADMIN_TOKEN, 'push', sif, ref], /--> PUT .*\/_upload\/.+\/1\b/, /<-- 200 .*_multipart_complete/);
      const out = path.join(workDir, `pulled-${i}.sif`);
      const pullLimit = await hashAndWriteMBps(workDir, size, false);
      const pull = await timedClient(['--url', shelfUrl, 'pull', ref, out, '--arch', 'amd64'], /--> GET .*\/v1\/imagefile\//, /<-- 206/);
      if ((await sha256File(out)) !== expected) throw new Error('pulled bytes differ');
      await rm(out);
      const run: Run = { push, pull, pushLimit, pullLimit };
      if (tmpfs) {
        // The same pull into memory: what the server delivers when the client's disk is not the limit.
        const mem = path.join(tmpfs, `shelf-bench-${process.pid}.sif`);
        run.pullToMemory = await timedClient(['--url', shelfUrl, 'pull', ref, mem, '--arch', 'amd64', '--no-hash-check'], /--> GET .*\/v1\/imagefile\//, /<-- 206/);
        await rm(mem);
      }
      runs.push(run);
    }
  } finally {
    await rm(sif, { force: true });
  }
  return runs;
}

const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
const verdict = (x: number) => (x >= 0.8 ? 'met' : `missed by ${((0.8 - x) * 100).toFixed(0)} points`);

/**
 * Library push (v2 multipart) and pull (303 + concurrent ranged download) with the real client at
 * each of SIZES, as a share of this machine's limits measured in the same run (issue 16: ≥ 80 %).
 */
export async function benchLibrary(workDir: string): Promise<string[]> {
  await mkdir(workDir, { recursive: true });
  const shelf = await startShelf({ dataDir: path.join(workDir, 'shelf-data') });
  const lines: string[] = [];
  try {
    for (const gib of SIZES) {
      const size = Math.round(gib * GiB) - 64 * 1024;
      const runs = await measureSize(workDir, shelf.url, size, `${gib}g`);
      const mbps = (s: number) => size / 1e6 / s;
      // Each run against its own limit, then the median of the shares.
      const share = (f: (r: Run) => number) => median(runs.map(f));
      const pushShare = share((r) => mbps(r.push.window) / r.pushLimit);
      const pullShare = share((r) => mbps(r.pull.window) / r.pullLimit);
      const pullWholeShare = share((r) => mbps(r.pull.total) / r.pullLimit);
      const m = (f: (r: Run) => number) => median(runs.map(f)).toFixed(0);
      lines.push(
        `library push ${gib} GiB SIF (v2 multipart, real client, median of ${RUNS}): upload ${m((r) => mbps(r.push.window))} MB/s, limit (sha256 + durable write, same run) ${m((r) => r.pushLimit)} MB/s: ${pct(pushShare)} [target ≥ 80 %: ${verdict(pushShare)}]`,
        `  whole push command ${m((r) => mbps(r.push.total))} MB/s (includes the client hashing the file with SHA-256 and MD5 before it uploads)`,
        `library pull ${gib} GiB SIF (303 + 3 × 5 MiB ranged parts, real client, median of ${RUNS}): download ${m((r) => mbps(r.pull.window))} MB/s, limit (sha256 + cached write, same run) ${m((r) => r.pullLimit)} MB/s: ${pct(pullShare)} [target ≥ 80 %: ${verdict(pullShare)}]`,
        `  whole pull command ${m((r) => mbps(r.pull.total))} MB/s = ${pct(pullWholeShare)} of the limit (includes the client's SHA-256 check of the file after the download)`,
      );
      const mem = runs.flatMap((r) => (r.pullToMemory ? [r.pullToMemory] : []));
      if (mem.length) lines.push(`  the same pull into tmpfs without the hash check: ${median(mem.map((t) => mbps(t.window))).toFixed(0)} MB/s (what the server delivers when the client's disk is not the limit)`);
    }
  } finally {
    await shelf.stop();
  }
  return lines;
}
