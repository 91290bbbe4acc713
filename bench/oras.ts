import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { startDockerRegistry } from '../test/helpers/docker-registry.js';
import { run } from '../test/helpers/run.js';
import { makeLargeSif } from '../test/helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, startShelf } from '../test/helpers/shelf.js';

const ORAS = path.join(CLIENTS, 'orasclient');
const GiB = 2 ** 30;
const RUNS = 3;

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

  const regDir = path.join(workDir, 'registry');
  const registry = await startDockerRegistry(regDir);
  const shelf = await startShelf({ dataDir: path.join(workDir, 'shelf-data') });
  try {
    const targets = {
      shelf: { host: new URL(shelf.url).host, auth: ['--user', 'admin', '--pass', ADMIN_TOKEN] },
      distribution: { host: registry.host, auth: [] as string[] },
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
    await registry.stop();
    await shelf.stop();
    await rm(sif, { force: true });
    await rm(regDir, { recursive: true, force: true });
  }
}
