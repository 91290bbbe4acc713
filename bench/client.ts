import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { shelfCli } from '../test/helpers/cli.js';
import { makeLargeSif } from '../test/helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, ROOT, startShelf } from '../test/helpers/shelf.js';

const LIBCLIENT = path.join(CLIENTS, 'libclient');
const RUNS = 3;
const SIZE = Number(process.env.SHELF_BENCH_CLIENT_SIZE ?? 2 ** 30) - 64 * 1024;

interface Timed {
  seconds: number;
  /** Peak resident memory of the process, in MiB (Linux /proc; 0 elsewhere). */
  peakMiB: number;
}

/** Runs a command to success, timing it and sampling its resident memory every 50 ms. */
function timed(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    let peak = 0;
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    const sample = setInterval(() => {
      readFile(`/proc/${child.pid}/status`, 'utf8').then(
        (s) => (peak = Math.max(peak, Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024)),
        () => undefined,
      );
    }, 50);
    child.on('close', (code) => {
      clearInterval(sample);
      if (code !== 0) return reject(new Error(`${path.basename(cmd)} ${args.join(' ')} failed: ${err}`));
      resolve({ seconds: (performance.now() - started) / 1000, peakMiB: peak });
    });
  });
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file, { highWaterMark: 4 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** `shelf push`/`pull` of a 1 GiB SIF against Shelf, beside the real Library client doing the same. */
export async function benchClient(workDir: string): Promise<string[]> {
  await mkdir(workDir, { recursive: true });
  const sif = path.join(workDir, 'client-1g.sif');
  await makeLargeSif(sif, workDir, SIZE);
  const shelf = await startShelf({ dataDir: path.join(workDir, 'shelf-data') });
  const cli = await shelfCli();
  const shelfBin = [path.join(ROOT, 'dist/cli/main.js')];
  const results: Record<string, Timed[]> = { shelfPush: [], shelfPull: [], libPush: [], libPull: [] };
  try {
    const login = await cli.run(['remote', 'add', 'bench', shelf.url]);
    if (login.code !== 0) throw new Error(login.stderr);
    await cli.run(['remote', 'login', 'bench', '--token', ADMIN_TOKEN]);
    for (let i = 0; i < RUNS; i++) {
      for (const who of ['lib', 'shelf'] as const) {
        // Different bytes each push, or the server would find them already stored.
        const handle = await open(sif, 'r+');
        await handle.write(Buffer.from(`${who} ${i} ${Date.now()}`), 0, undefined, SIZE + 32_000 - 64);
        await handle.close();
        const expected = await sha256File(sif);
        const out = path.join(workDir, `pulled-${who}-${i}.sif`);
        if (who === 'lib') {
          results.libPush!.push(await timed(LIBCLIENT, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', sif, `admin/bench/lib${i}:latest`]));
          results.libPull!.push(await timed(LIBCLIENT, ['--url', shelf.url, 'pull', `admin/bench/lib${i}:latest`, out, '--arch', 'amd64']));
        } else {
          results.shelfPush!.push(await timed(process.execPath, [...shelfBin, 'push', sif, `library://admin/bench/shelf${i}:latest`, '--quiet'], cli.env));
          results.shelfPull!.push(await timed(process.execPath, [...shelfBin, 'pull', out, `library://admin/bench/shelf${i}:latest`, '--arch', 'amd64', '--quiet'], cli.env));
        }
        if ((await sha256File(out)) !== expected) throw new Error(`${who}: pulled bytes differ`);
        await rm(out);
      }
    }
  } finally {
    await shelf.stop();
    await rm(cli.home, { recursive: true, force: true });
    await rm(sif, { force: true });
  }
  const line = (label: string, xs: Timed[]) =>
    `${label.padEnd(34)} ${(SIZE / 1e6 / median(xs.map((x) => x.seconds))).toFixed(0).padStart(5)} MB/s, peak RSS ${median(xs.map((x) => x.peakMiB)).toFixed(0)} MiB`;
  return [
    `shelf client vs real Library client, ${(SIZE / 2 ** 20).toFixed(0)} MiB SIF against Shelf, whole commands, median of ${RUNS}:`,
    `  ${line('shelf push (4 parallel parts)', results.shelfPush!)}`,
    `  ${line('libclient push', results.libPush!)}`,
    `  ${line('shelf pull (4 × 8 MiB ranges)', results.shelfPull!)}`,
    `  ${line('libclient pull', results.libPull!)}`,
  ];
}
