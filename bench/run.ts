import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { measureBaseline } from './baseline.js';
import { benchGc } from './gc.js';
import { benchInspect } from './inspect.js';
import { benchLibrary } from './library.js';
import { benchMemory } from './memory.js';
import { benchOras } from './oras.js';
import { benchClient } from './client.js';
import { benchS3 } from './s3.js';
import { benchScale } from './scale.js';
import { benchServe } from './serve.js';

/**
 * `npm run bench [-- SECTION...]`: sections `inspect`, `library`, `oras`, `serve`, `memory`, `s3`, `gc`, `client`, `scale`
 * (default: all; `scale` honours SCALE_SIZES, SCALE_DBS and SCALE_RUNS; `serve` SERVE_CONCURRENCY and SERVE_RUNS;
 * `library` SIZES (GiB, default 1,4) and LIBRARY_RUNS; `oras` ORAS_RUNS; `memory` MEMORY_PULLS, MEMORY_PULL_MIB,
 * MEMORY_PUSHES, MEMORY_PUSH_MIB and MEMORY_FLAT_MIB to scale it down).
 * Each prints its figures beside the baseline the issues name.
 */
const wanted = new Set(process.argv.slice(2));
const on = (name: string) => wanted.size === 0 || wanted.has(name);

const work = await mkdtemp(path.join(process.env.SHELF_BENCH_DIR ?? tmpdir(), 'shelf-bench-'));
const print = (lines: string[]) => lines.forEach((l) => console.log(l));
try {
  const baseline = await measureBaseline(work);
  console.log(`baseline: sha256 ${baseline.sha256MBps.toFixed(0)} MB/s, disk write (fsync) ${baseline.diskWriteMBps.toFixed(0)} MB/s`);
  if (on('inspect')) print(await benchInspect(path.join(work, 'inspect')));
  if (on('library')) print(await benchLibrary(path.join(work, 'library')));
  if (on('oras')) print(await benchOras(path.join(work, 'oras')));
  if (on('serve')) print(await benchServe(path.join(work, 'serve')));
  if (on('memory')) print(await benchMemory(path.join(work, 'memory')));
  if (on('s3')) print(await benchS3(path.join(work, 's3')));
  if (on('gc')) print(await benchGc(path.join(work, 'gc')));
  if (on('client')) print(await benchClient(path.join(work, 'client')));
  if (on('scale')) print(await benchScale(path.join(work, 'scale')));
} finally {
  await rm(work, { recursive: true, force: true });
}
