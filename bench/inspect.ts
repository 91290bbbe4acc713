import { copyFile, mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { CountingSource, FileSource, inspectSif, readSif, summarizeSif, type RandomAccessSource } from '../src/sif/index.js';

const FIXTURE = path.resolve(import.meta.dirname, '../test/fixtures/sif/apptainer-layout-amd64.sif');
const RUNS = 25;

/**
 * A SIF whose primary partition holds `size` bytes, made from a fixture: its real 4 KiB squashfs
 * followed by a hole up to `size` (a sparse file: no disk space, nothing to write), with the
 * partition descriptor and the header's data size patched to match.
 */
export async function makeSparseSif(file: string, size: number): Promise<void> {
  await copyFile(FIXTURE, file);
  const source = await FileSource.open(file);
  const image = await readSif(source).finally(() => source.close());
  const part = image.descriptors.find((d) => d.dataType === 0x4004)!;
  const end = part.offset + size;
  const handle = await open(file, 'r+');
  try {
    await handle.truncate(end);
    const record = Buffer.from(part.raw);
    record.writeBigInt64LE(BigInt(size), 25);
    record.writeBigInt64LE(BigInt(part.sizeWithPadding - part.size + size), 33);
    await handle.write(record, 0, record.length, image.header.descriptorsOffset + part.index * record.length);
    const header = Buffer.from(image.header.raw);
    header.writeBigInt64LE(BigInt(end - image.header.dataOffset), 120);
    await handle.write(header, 0, header.length, 0);
  } finally {
    await handle.close();
  }
}

async function time(source: RandomAccessSource, fn: (s: RandomAccessSource) => Promise<unknown>) {
  const times: number[] = [];
  let counted = new CountingSource(source);
  for (let i = 0; i < RUNS; i++) {
    counted = new CountingSource(source);
    const t = performance.now();
    await fn(counted);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(RUNS / 2)]!, counted };
}

/** `summarizeSif` (what the server runs on every upload) and `shelf inspect` on a 1 GiB SIF. */
export async function benchInspect(workDir: string): Promise<string[]> {
  await mkdir(workDir, { recursive: true });
  const file = path.join(workDir, 'inspect-1g.sif');
  await makeSparseSif(file, 2 ** 30);
  const source = await FileSource.open(file);
  try {
    const part = (await readSif(source)).descriptors.find((d) => d.dataType === 0x4004)!;
    const partitionBytes = (c: CountingSource) =>
      c.ranges.reduce((n, [s, e]) => n + Math.max(0, Math.min(e, part.offset + part.size) - Math.max(s, part.offset)), 0);
    const summary = await time(source, summarizeSif);
    const inspect = await time(source, (s) => inspectSif(s, { squashfsLabels: true }));
    const read = partitionBytes(summary.counted);
    return [
      `inspect 1 GiB SIF: summarizeSif ${summary.median.toFixed(2)} ms (median of ${RUNS}), reads ${summary.counted.bytesRead} bytes in ${summary.counted.ranges.length} reads, ` +
        (read === 0 ? 'partition data not read' : `${read} bytes of partition data read`),
      `inspect 1 GiB SIF: shelf inspect (with squashfs labels) ${inspect.median.toFixed(2)} ms, reads ${inspect.counted.bytesRead} bytes, ${partitionBytes(inspect.counted)} of them from the partition`,
    ];
  } finally {
    await source.close();
    await rm(file, { force: true });
  }
}
