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
