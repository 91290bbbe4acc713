import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rm, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../test/helpers/run.js';
import { makeLargeSif } from '../test/helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, startShelf, type TestShelf } from '../test/helpers/shelf.js';
import { sha256File } from './library.js';
import { rss, trackPeakRss } from './proc.js';
import { SHIPPED_NODE_OPTIONS } from './shipped.js';

const LIBCLIENT = path.join(CLIENTS, 'libclient');
const ORAS = path.join(CLIENTS, 'orasclient');
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const MB = 1e6;
/** Issue 16: the server's peak RSS under this, and flat in image size. */
const TARGET_MB = 300;
const env = (name: string, fallback: string) => process.env[name] ?? fallback;
/** (a) this many concurrent pulls of one image of MEMORY_PULL_MIB. */
const PULLS = Number(env('MEMORY_PULLS', '200'));
const PULL_MIB = Number(env('MEMORY_PULL_MIB', '1024'));
/** (b) this many concurrent pushes, each of an image of MEMORY_PUSH_MIB. */
const PUSHES = Number(env('MEMORY_PUSHES', '10'));
const PUSH_MIB = Number(env('MEMORY_PUSH_MIB', '4096'));
/** (c) one push and one pull at each of these sizes. */
const FLAT_MIB = env('MEMORY_FLAT_MIB', '100,1024,4096').split(',').map(Number);

/** A SIF's system partition: the image a little short of `mib`. */
const partitionBytes = (mib: number) => Math.round(mib * MiB) - 64 * 1024;

/** makeLargeSif leaves its partition file beside the SIF; at these sizes it matters. */
async function makeSif(file: string, dir: string, mib: number): Promise<void> {
  await makeLargeSif(file, dir, partitionBytes(mib));
  for (const f of await readdir(dir)) if (f.startsWith('part-')) await rm(path.join(dir, f), { force: true });
}

/** Each of `urls` fetched by its own curl process at once, bytes discarded; checks each answer. */
async function curlAll(urls: string[], headers: string[], wantSize: number): Promise<void> {
  const answers = await Promise.all(
    urls.map(
      (url) =>
        new Promise<string>((resolve, reject) => {
          const child = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', ...headers.flatMap((h) => ['-H', h]), url], { stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.on('error', reject);
          child.on('close', () => resolve(out));
        }),
    ),
  );
  const bad = answers.filter((a) => a !== `200 ${wantSize}`);
  if (bad.length) throw new Error(`${bad.length} of ${urls.length} GETs answered otherwise than "200 ${wantSize}", e.g. "${bad[0]}"`);
}

async function libPush(shelf: TestShelf, sif: string, ref: string): Promise<void> {
  const r = await run(LIBCLIENT, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', sif, ref], { timeoutMs: 3_600_000 });
  if (r.code !== 0) throw new Error(`libclient push ${ref} failed: ${r.stderr.slice(-2000)}`);
}

async function downloadLink(shelf: TestShelf, ref: string): Promise<string> {
  const res = await fetch(`${shelf.url}/v1/imagefile/${ref}?arch=amd64`, { redirect: 'manual', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (res.status !== 303) throw new Error(`${ref}: no download link (${res.status})`);
  return res.headers.get('location')!;
}

/**
 * `n` download links, one after the other: at once, fetch would open as many connections, which
 * stay open idle and count against the per-address cap when the downloads start.
 */
async function links(shelf: TestShelf, ref: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await downloadLink(shelf, ref));
  return out;
}

/** The server's peak RSS, in MB, while `work` runs; and the work's seconds. */
async function peakDuring(pid: number, work: () => Promise<void>): Promise<{ peakMB: number; seconds: number }> {
  const tracker = await trackPeakRss(pid);
  const t = performance.now();
  const done = await work().then(
    () => null,
    (err: unknown) => err,
  );
  const peak = await tracker.stop();
  if (done) throw done;
  return { peakMB: peak / MB, seconds: (performance.now() - t) / 1000 };
}

const verdict = (mb: number) => (mb < TARGET_MB ? 'met' : `missed by ${(mb - TARGET_MB).toFixed(0)} MB`);

/**
 * Copies of one SIF for concurrent pushes, each with other bytes. With room for them and their
 * stored copies, each is a makeLargeSif of random bytes; without, one SIF whose partition is
 * holes but for its first MiB, copied sparsely (the server still receives, hashes and stores
 * every byte; the client reads zeros from the holes quickly). MEMORY_SPARSE=1 makes them sparse anyway.
 */
async function makePushSifs(dir: string, n: number, mib: number): Promise<{ files: string[]; sparse: string | null }> {
  const files = Array.from({ length: n }, (_, i) => path.join(dir, `push-${i}.sif`));
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  const needed = n * mib * MiB * 2 + 8 * GiB;
  if (free >= needed && process.env.MEMORY_SPARSE !== '1') {
    for (const f of files) await makeSif(f, dir, mib);
    return { files, sparse: null };
  }
  const part = path.join(dir, 'sparse-part.bin');
  const handle = await open(part, 'w');
  await handle.write(randomBytes(MiB), 0, MiB, 0);
  await handle.truncate(partitionBytes(mib));
  await handle.close();
  for (const args of [
    ['siftool', 'new', files[0]!],
    ['siftool', 'add', files[0]!, part, '--datatype', '4', '--parttype', '2', '--partfs', '1', '--partarch', '2', '--groupid', '1'],
    ['fallocate', '--dig-holes', files[0]!],
    ...files.slice(1).map((f) => ['cp', '--sparse=always', files[0]!, f]),
  ]) {
    const r = await run(args[0]!, args.slice(1), { timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
  }
  await rm(part);
  for (const [i, f] of files.entries()) {
    const h = await open(f, 'r+');
    await h.write(Buffer.from(`copy ${i} ${Date.now()} ${randomBytes(8).toString('hex')}`), 0, undefined, Math.floor(partitionBytes(mib) / 2));
    await h.close();
  }
  return { files, sparse: free >= needed ? 'MEMORY_SPARSE=1' : `the disk had ${(free / GiB).toFixed(0)} GiB free, not the ${(needed / GiB).toFixed(0)} GiB ${n} random ones and their stored copies need` };
}

/**
 * Issue 16's memory figures: the server's peak RSS (high-water mark reset, and VmRSS polled every
 * 50 ms; every client is another process) during (a) PULLS concurrent pulls of one image, by OCI
 * blob GET and by Library download, (b) PUSHES concurrent Library pushes, (c) one push and one
 * pull at each of FLAT_MIB.
 */
/** The server's V8 flags: the shipped ones unless MEMORY_NODE_OPTIONS says otherwise (' ' for Node's defaults). */
const NODE_OPTIONS = (process.env.MEMORY_NODE_OPTIONS ?? SHIPPED_NODE_OPTIONS).trim();

export async function benchMemory(workDir: string): Promise<string[]> {
  await mkdir(workDir, { recursive: true });
  const lines = [
    `memory: Shelf's peak RSS (VmHWM reset, VmRSS polled every 50 ms; curl and libclient are other processes) [target < ${TARGET_MB} MB, flat in image size]`,
  ];

  // (c) first, on a server of its own: one push and one pull per size.
  let shelf = await startShelf({ dataDir: path.join(workDir, 'flat-data'), env: { NODE_OPTIONS } });
  try {
    lines.push(`  idle after start: ${((await rss(shelf.process.pid!)) / MB).toFixed(0)} MB`);
    const flat: Array<{ mib: number; push: number; pull: number }> = [];
    for (const mib of FLAT_MIB) {
      const sif = path.join(workDir, `flat-${mib}.sif`);
      await makeSif(sif, workDir, mib);
      const ref = `admin/mem/flat-${mib}:latest`;
      const push = await peakDuring(shelf.process.pid!, () => libPush(shelf, sif, ref));
      const link = await downloadLink(shelf, ref);
      const { size } = await stat(sif);
      const pull = await peakDuring(shelf.process.pid!, () => curlAll([link], [], size));
      flat.push({ mib, push: push.peakMB, pull: pull.peakMB });
      await rm(sif);
    }
    const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
    lines.push(
      `  (c) one Library push (libclient) and one Library download (curl) per size: ` +
        flat.map((f) => `${f.mib} MiB push ${f.push.toFixed(0)} MB, pull ${f.pull.toFixed(0)} MB`).join('; ') +
        ` — spread push ${spread(flat.map((f) => f.push)).toFixed(0)} MB, pull ${spread(flat.map((f) => f.pull)).toFixed(0)} MB [flat: ${verdict(Math.max(...flat.flatMap((f) => [f.push, f.pull])))}]`,
    );
  } finally {
    await shelf.stop();
    await rm(path.join(workDir, 'flat-data'), { recursive: true, force: true });
  }

  // Every curl comes from 127.0.0.1: room for all of them at once (a job array behind one NAT).
  shelf = await startShelf({ dataDir: path.join(workDir, 'load-data'), env: { NODE_OPTIONS, SHELF_LIMITS_CONNECTIONS_PER_ADDRESS: String(PULLS + 64) } });
  try {
    const pid = shelf.process.pid!;
    // (a) PULLS at once of one image, pushed by ORAS so both paths serve it.
    const sif = path.join(workDir, 'pull.sif');
    await makeSif(sif, workDir, PULL_MIB);
    const size = (await stat(sif)).size;
    const digest = `sha256:${await sha256File(sif)}`;
    const host = new URL(shelf.url).host;
    const push = await run(ORAS, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'push', sif, `${host}/admin/mem/pull:v1`], { timeoutMs: 600_000 });
    if (push.code !== 0) throw new Error(`oras push failed: ${push.stderr}`);
    await rm(sif);
    const tokenRes = await fetch(`${shelf.url}/v2/token?service=shelf&scope=repository:admin/mem/pull:pull`, { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` } });
    const token = ((await tokenRes.json()) as { token: string }).token;
    const blobUrl = `${shelf.url}/v2/admin/mem/pull/blobs/${digest}`;
    // Every byte in the page cache first.
    await curlAll([blobUrl], [`Authorization: Bearer ${token}`], size);
    for (const [label, urls, headers] of [
      ['OCI blob GET', Array.from({ length: PULLS }, () => blobUrl), [`Authorization: Bearer ${token}`]],
      ['Library download', await links(shelf, 'admin/mem/pull:v1', PULLS), []],
    ] as const) {
      const r = await peakDuring(pid, () => curlAll([...urls], [...headers], size));
      lines.push(
        `  (a) ${PULLS} concurrent pulls of a ${(size / MiB).toFixed(0)} MiB image, ${label} (curl): peak ${r.peakMB.toFixed(0)} MB, ` +
          `${((PULLS * size) / MiB / r.seconds).toFixed(0)} MiB/s aggregate [${verdict(r.peakMB)}]`,
      );
    }

    // (b) PUSHES at once: the server stores every byte of each.
    const fs = await statfs(workDir);
    const storeNeeds = PUSHES * PUSH_MIB * MiB + 4 * GiB;
    if (fs.bavail * fs.bsize < storeNeeds) {
      lines.push(`  (b) not measured: ${((fs.bavail * fs.bsize) / GiB).toFixed(0)} GiB free, the pushes need ${(storeNeeds / GiB).toFixed(0)} GiB (set MEMORY_PUSHES, MEMORY_PUSH_MIB or SHELF_BENCH_DIR)`);
      return lines;
    }
    const { files, sparse } = await makePushSifs(workDir, PUSHES, PUSH_MIB);
    try {
      const r = await peakDuring(pid, async () => {
        await Promise.all(files.map((f, i) => libPush(shelf, f, `admin/mem/push-${i}:latest`)));
      });
      lines.push(
        `  (b) ${PUSHES} concurrent Library pushes of ${PUSH_MIB} MiB (libclient, v2 multipart): peak ${r.peakMB.toFixed(0)} MB, ` +
          `${((PUSHES * PUSH_MIB * MiB) / MB / r.seconds).toFixed(0)} MB/s aggregate (whole commands, their hashing included) [${verdict(r.peakMB)}]` +
          (sparse ? ` (the SIFs are sparse copies, all holes but 1 MiB: ${sparse})` : ''),
      );
    } finally {
      for (const f of files) await rm(f, { force: true });
    }
  } finally {
    await shelf.stop();
    await rm(path.join(workDir, 'load-data'), { recursive: true, force: true });
  }
  return lines;
}
