import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { startDockerRegistry } from '../test/helpers/docker-registry.js';
import { run } from '../test/helpers/run.js';
import { makeLargeSif } from '../test/helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, startShelf } from '../test/helpers/shelf.js';
import { sha256File } from './library.js';
import { cpuSeconds, median, reapedChildrenCpuSeconds } from './proc.js';

const ORAS = path.join(CLIENTS, 'orasclient');
const GiB = 2 ** 30;
const RUNS = Number(process.env.ORAS_RUNS ?? 3);
/** Issue 16's targets: Distribution's time over Shelf's. */
const TARGET = { push: 1.5, pull: 1.0 };

interface Sample {
  seconds: number;
  /** CPU seconds of the server process (utime + stime) during the command. */
  serverCpu: number;
  /** CPU seconds of the oras client process. */
  clientCpu: number;
}

/** Runs one oras command, timing it and counting its CPU and the server's. */
async function timedOras(serverPid: number, args: string[]): Promise<Sample> {
  const server0 = await cpuSeconds(serverPid);
  const client0 = await reapedChildrenCpuSeconds();
  const start = process.hrtime.bigint();
  const r = await run(ORAS, args, { timeoutMs: 600_000 });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.code !== 0) throw new Error(`oras ${args.slice(-3).join(' ')} failed: ${r.stderr}`);
  return { seconds, serverCpu: (await cpuSeconds(serverPid)) - server0, clientCpu: (await reapedChildrenCpuSeconds()) - client0 };
}

/**
 * ORAS push and pull of a 1 GiB SIF with the real oras-go client: Shelf against Debian's
 * docker-registry 2.8.2, alternating, with the CPU the server and the client each spent.
 */
export async function benchOras(workDir: string): Promise<string[]> {
  await mkdir(workDir, { recursive: true });
  const size = GiB - 64 * 1024;
  const sif = path.join(workDir, 'oras-1g.sif');
  await makeLargeSif(sif, workDir, size);
  const expected = await sha256File(sif);

  const regDir = path.join(workDir, 'registry');
  const registry = await startDockerRegistry(regDir);
  const shelf = await startShelf({ dataDir: path.join(workDir, 'shelf-data') });
  try {
    const targets = {
      shelf: { host: new URL(shelf.url).host, auth: ['--user', 'admin', '--pass', ADMIN_TOKEN], pid: shelf.process.pid! },
      distribution: { host: registry.host, auth: [] as string[], pid: registry.pid },
    };
    const samples: Record<string, { push: Sample[]; pull: Sample[] }> = { shelf: { push: [], pull: [] }, distribution: { push: [], pull: [] } };
    for (let i = 0; i < RUNS; i++) {
      // Alternate which goes first, so neither always meets the other's dirty pages.
      const order = i % 2 === 0 ? (['distribution', 'shelf'] as const) : (['shelf', 'distribution'] as const);
      for (const name of order) {
        const t = targets[name];
        const ref = `${t.host}/admin/bench/run${i}:latest`;
        samples[name]!.push.push(await timedOras(t.pid, [...t.auth, 'push', sif, ref]));
        const out = path.join(workDir, `pulled-${name}.sif`);
        samples[name]!.pull.push(await timedOras(t.pid, [...t.auth, 'pull', ref, out]));
        if ((await sha256File(out)) !== expected) throw new Error(`${name}: pulled bytes differ`);
        await rm(out);
      }
    }
    const gib = size / GiB;
    const mbps = (s: number) => size / 1e6 / s;
    const lines: string[] = [];
    for (const op of ['push', 'pull'] as const) {
      const s = samples.shelf![op];
      const d = samples.distribution![op];
      const st = median(s.map((x) => x.seconds));
      const dt = median(d.map((x) => x.seconds));
      const ratio = dt / st;
      lines.push(
        `oras ${op} 1 GiB SIF (oras-go client, median of ${RUNS}, alternating): Shelf ${mbps(st).toFixed(0)} MB/s (${st.toFixed(2)} s), ` +
          `docker-registry 2.8.2 ${mbps(dt).toFixed(0)} MB/s (${dt.toFixed(2)} s): ratio ${ratio.toFixed(2)}× [target ≥ ${TARGET[op].toFixed(1)}×: ${ratio >= TARGET[op] ? 'met' : `missed by ${((1 - ratio / TARGET[op]) * 100).toFixed(0)} %`}]`,
      );
      const cpu = (xs: Sample[], k: 'serverCpu' | 'clientCpu') => median(xs.map((x) => x[k])) / gib;
      lines.push(
        `  CPU-s per GiB (median): server Shelf ${cpu(s, 'serverCpu').toFixed(2)} vs Distribution ${cpu(d, 'serverCpu').toFixed(2)}; ` +
          `oras client against Shelf ${cpu(s, 'clientCpu').toFixed(2)} vs against Distribution ${cpu(d, 'clientCpu').toFixed(2)}`,
      );
    }
    lines.push('  (whole client command: includes the client hashing the file, and its own verification on pull; CPU from /proc utime+stime, the client\'s as this process\'s reaped children)');
    return lines;
  } finally {
    await registry.stop();
    await shelf.stop();
    await rm(sif, { force: true });
    await rm(regDir, { recursive: true, force: true });
  }
}
