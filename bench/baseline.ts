import { createHash, randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';

export interface Baseline {
  sha256MBps: number;
  diskWriteMBps: number;
}

const MB = 1e6;

/** This machine's limits for a push: SHA-256 over 1 GiB in 1 MiB chunks, and writing 1 GiB with a final fsync. */
export async function measureBaseline(workDir: string, bytes = 2 ** 30): Promise<Baseline> {
  const chunk = randomBytes(1 << 20);
  const hash = createHash('sha256');
  let t = performance.now();
  for (let done = 0; done < bytes; done += chunk.length) hash.update(chunk);
  hash.digest();
  const sha256MBps = bytes / MB / ((performance.now() - t) / 1000);

  const file = path.join(workDir, 'disk-baseline.bin');
  const handle = await open(file, 'w');
  t = performance.now();
  for (let done = 0; done < bytes; done += chunk.length) await handle.write(chunk);
  await handle.sync();
  await handle.close();
  const diskWriteMBps = bytes / MB / ((performance.now() - t) / 1000);
  await rm(file, { force: true });
  return { sha256MBps, diskWriteMBps };
}

/**
 * What a server (push) or a client (pull) that hashes the bytes and writes them can reach here at
 * best: `bytes` through SHA-256 and into a file in 1 MiB chunks, each chunk's write (the thread
 * pool) overlapping its hashing (this thread), with a final fsync when `durable`. In MB/s.
 */
export async function hashAndWriteMBps(workDir: string, bytes: number, durable: boolean): Promise<number> {
  const chunk = randomBytes(1 << 20);
  const hash = createHash('sha256');
  const file = path.join(workDir, `limit-${process.pid}.bin`);
  const handle = await open(file, 'w');
  const t = performance.now();
  try {
    for (let done = 0; done < bytes; done += chunk.length) {
      const n = Math.min(chunk.length, bytes - done);
      const written = handle.write(chunk, 0, n);
      hash.update(n === chunk.length ? chunk : chunk.subarray(0, n));
      await written;
    }
    hash.digest();
    if (durable) await handle.sync();
    return bytes / MB / ((performance.now() - t) / 1000);
  } finally {
    await handle.close();
    await rm(file, { force: true });
  }
}
