import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { FileSource, inspectSif, type RandomAccessSource } from '../src/sif/index.js';
import { makeLargeSif } from '../test/helpers/sif.js';

/** Counts what is read, to show that inspecting does not touch partition data. */
class CountingSource implements RandomAccessSource {
  bytesRead = 0;
  constructor(private readonly inner: RandomAccessSource) {}
  get size(): number {
    return this.inner.size;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    const b = await this.inner.read(offset, length);
    this.bytesRead += b.length;
    return b;
  }
}

/** `shelf inspect` of a 1 GiB SIF: time and bytes read. */
export async function benchInspect(workDir: string): Promise<string[]> {
  await mkdir(workDir, { recursive: true });
  const sif = path.join(workDir, 'inspect-1g.sif');
  await makeLargeSif(sif, workDir, 2 ** 30);
  const source = await FileSource.open(sif);
  try {
    const times: number[] = [];
    let counted = new CountingSource(source);
    for (let i = 0; i < 20; i++) {
      counted = new CountingSource(source);
      const t = performance.now();
      await inspectSif(counted);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return [
      `inspect 1 GiB SIF: median ${times[10]!.toFixed(2)} ms over 20 runs, reads ${counted.bytesRead} of ${source.size} bytes (partition data not read)`,
    ];
  } finally {
    await source.close();
    await rm(sif, { force: true });
  }
}
