import { open } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { run } from './run.js';

/**
 * A real SIF made by Debian's `siftool` whose system partition holds `size` bytes of random
 * data (siftool does not check the partition content), architecture `arch` (siftool code).
 */
export async function makeLargeSif(file: string, dir: string, size: number, archCode = 2): Promise<void> {
  const part = `${dir}/part-${randomBytes(4).toString('hex')}.bin`;
  const handle = await open(part, 'w');
  const chunk = 8 << 20;
  for (let written = 0; written < size; written += chunk) {
    await handle.write(randomBytes(Math.min(chunk, size - written)));
  }
  await handle.close();
  for (const args of [
    ['new', file],
    ['add', file, part, '--datatype', '4', '--parttype', '2', '--partfs', '1', '--partarch', String(archCode), '--groupid', '1'],
  ]) {
    const r = await run('siftool', args);
    if (r.code !== 0) throw new Error(`siftool ${args.join(' ')} failed: ${r.stderr}`);
  }
}
