import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { openBlobStore, parseBlobUrl } from '../src/blobs/open.js';
import { run } from '../test/helpers/run.js';
import { makeLargeSif } from '../test/helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, freshPostgres, startShelf, type TestShelf } from '../test/helpers/shelf.js';
import { startSwift, type SwiftServer } from '../test/helpers/swift.js';
import { sha256File, timedClient } from './library.js';

const LIBCLIENT = path.join(CLIENTS, 'libclient');
const SIZE = 2 ** 30 - 64 * 1024;
const CONCURRENT_PULLS = 50;
const CONCURRENT_SIZE = 64 * 2 ** 20;

const mbps = (bytes: number, s: number) => bytes / 1e6 / s;

/** Peak resident set of a process while `work` runs, sampled every 100 ms (MiB). */
async function peakRss<T>(pids: number[], work: () => Promise<T>): Promise<{ result: T; peaks: number[] }> {
  const peaks = pids.map(() => 0);
  const sample = async () => {
    await Promise.all(
      pids.map(async (pid, i) => {
        const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
        const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
        peaks[i] = Math.max(peaks[i]!, kb / 1024);
      }),
    );
  };
  const timer = setInterval(() => void sample(), 100);
  try {
    const result = await work();
    await sample();
    return { result, peaks };
  } finally {
    clearInterval(timer);
  }
}

/**
 * The S3 store (OpenStack Swift on this machine): push and pull of a 1 GiB SIF with the real
 * Library client, downloads redirected to presigned URLs and proxied by Shelf; then 50
 * concurrent pulls of one image spread over two nodes sharing PostgreSQL and the bucket.
 */
export async function benchS3(workDir: string): Promise<string[]> {
  await mkdir(workDir, { recursive: true });
  const lines: string[] = [];
  const swift = await startSwift();
  const sif = path.join(workDir, 's3-1g.sif');
  const tmpfs = existsSync('/dev/shm') ? '/dev/shm' : workDir;
  try {
    lines.push(await storeBaseline(swift));
    await makeLargeSif(sif, workDir, SIZE);
    for (const redirect of [true, false]) {
      const shelf = await startShelf({
        dataDir: path.join(workDir, `data-${redirect}`),
        env: {
          ...swift.env,
          SHELF_BLOBS: swift.blobsUrl({ bucket: `bench-${redirect ? 'redirect' : 'proxy'}` }),
          SHELF_BLOBS_REDIRECT: String(redirect),
        },
      });
      try {
        const handle = await open(sif, 'r+');
        await handle.write(Buffer.from(`s3 ${redirect} ${Date.now()}`), 0, undefined, SIZE + 32_000 - 64);
        await handle.close();
        const expected = await sha256File(sif);
        const { result: push, peaks: pushRss } = await peakRss([shelf.process.pid!], () =>
          timedClient(['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', sif, 'admin/bench/s3:latest'], /--> PUT .*\/_upload\/.+\/1\b/, /<-- 200 .*_multipart_complete/),
        );
        const out = path.join(tmpfs, `shelf-bench-s3-${process.pid}.sif`);
        const { result: pull, peaks: pullRss } = await peakRss([shelf.process.pid!], () =>
          timedClient(['--url', shelf.url, 'pull', 'admin/bench/s3:latest', out, '--arch', 'amd64'], /--> GET .*\/v1\/imagefile\//, /<-- 206/),
        );
        const same = (await sha256File(out)) === expected;
        await rm(out, { force: true });
        if (!same) throw new Error('pulled bytes differ');
        const mode = redirect ? 'redirect to presigned GET' : 'proxied by Shelf';
        lines.push(
          `s3 push 1 GiB SIF (v2 multipart, real client): upload ${mbps(SIZE, push.window).toFixed(0)} MB/s (upload window incl. the commit's server-side copies), whole command ${mbps(SIZE, push.total).toFixed(0)} MB/s; Shelf RSS peak ${pushRss[0]!.toFixed(0)} MiB`,
          `s3 pull 1 GiB SIF (${mode}, 3 ranged streams): download ${mbps(SIZE, pull.window).toFixed(0)} MB/s, whole command ${mbps(SIZE, pull.total).toFixed(0)} MB/s; Shelf RSS peak ${pullRss[0]!.toFixed(0)} MiB`,
        );
      } finally {
        await shelf.stop();
      }
    }
    lines.push(...(await concurrentPulls(swift, workDir, tmpfs)));
  } finally {
    await rm(sif, { force: true });
    await swift.stop();
  }
  return lines;
}

/** What the store itself takes and gives through the SDK on this machine, without Shelf's HTTP in between. */
async function storeBaseline(swift: SwiftServer): Promise<string> {
  const size = 256 * 2 ** 20;
  const generate = () => {
    let made = 0;
    return new Readable({
      read() {
        if (made >= size) return void this.push(null);
        const block = Buffer.alloc(1 << 20, made & 0xff);
        block.writeUInt32BE(made / (1 << 20), 0);
        made += block.length;
        this.push(block);
      },
    });
  };
  const hash = createHash('sha256');
  for await (const c of generate()) hash.update(c as Buffer);
  const digest = `sha256:${hash.digest('hex')}`;
  // The SDK's default chain reads the credentials from the environment, as in `shelf serve`.
  Object.assign(process.env, swift.env);
  const store = await openBlobStore(parseBlobUrl(swift.blobsUrl({ bucket: 'bench-baseline' }), '/unused'));
  try {
    let t = performance.now();
    await store.ingest(generate(), { digest, size });
    const put = (performance.now() - t) / 1000;
    t = performance.now();
    for await (const c of await store.open(digest)) void c;
    const get = (performance.now() - t) / 1000;
    return `store baseline (Swift via the SDK, 256 MiB, one stream): multipart PUT ${mbps(size, put).toFixed(0)} MB/s, GET ${mbps(size, get).toFixed(0)} MB/s`;
  } finally {
    store.close?.();
  }
}

async function concurrentPulls(swift: SwiftServer, workDir: string, tmpfs: string): Promise<string[]> {
  const db = await freshPostgres();
  const nodes: TestShelf[] = [];
  const lines: string[] = [];
  const image = path.join(workDir, 's3-64m.sif');
  try {
    await makeLargeSif(image, workDir, CONCURRENT_SIZE);
    const size = (await readFile(image)).length;
    for (const redirect of [true, false]) {
      const env = { ...swift.env, SHELF_BLOBS: swift.blobsUrl({ bucket: 'bench-nodes' }), SHELF_BLOBS_REDIRECT: String(redirect) };
      nodes.push(await startShelf({ dbUrl: db.url, env }));
      nodes.push(await startShelf({ dbUrl: db.url, env }));
      const [a, b] = nodes.slice(-2) as [TestShelf, TestShelf];
      if (redirect) {
        const push = await run(LIBCLIENT, ['--url', a.url, '--token', ADMIN_TOKEN, 'push', image, 'admin/bench/many:latest']);
        if (push.code !== 0) throw new Error(`push failed: ${push.stderr}`);
      }
      const started = performance.now();
      const { result, peaks } = await peakRss([a.process.pid!, b.process.pid!], () =>
        Promise.all(
          Array.from({ length: CONCURRENT_PULLS }, async (_, i) => {
            const out = path.join(tmpfs, `shelf-bench-many-${process.pid}-${i}.sif`);
            const node = i % 2 === 0 ? a : b;
            const r = await run(LIBCLIENT, ['--url', node.url, 'pull', 'admin/bench/many:latest', out, '--arch', 'amd64'], { timeoutMs: 600_000 });
            await rm(out, { force: true });
            return r.code;
          }),
        ),
      );
      const seconds = (performance.now() - started) / 1000;
      const errors = result.filter((c) => c !== 0).length;
      lines.push(
        `s3 ${CONCURRENT_PULLS} concurrent pulls of one ${(size / 2 ** 20).toFixed(0)} MiB image over 2 nodes (${redirect ? 'redirected' : 'proxied'}, real client, hash checked): ${errors} errors, ${seconds.toFixed(1)} s, ${mbps(size * CONCURRENT_PULLS, seconds).toFixed(0)} MB/s in total; RSS peak node A ${peaks[0]!.toFixed(0)} MiB, node B ${peaks[1]!.toFixed(0)} MiB`,
      );
      await Promise.all(nodes.splice(0).map((n) => n.stop()));
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await db.drop();
    await rm(image, { force: true });
  }
  return lines;
}
