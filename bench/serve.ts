import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { startDockerRegistry } from '../test/helpers/docker-registry.js';
import { offloadSite, startNginx } from '../test/helpers/nginx.js';
import { run } from '../test/helpers/run.js';
import { makeLargeSif } from '../test/helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, ROOT, startShelf } from '../test/helpers/shelf.js';
import { sha256File } from './library.js';
import { cpuSeconds, median, rss } from './proc.js';

const ORAS = path.join(CLIENTS, 'orasclient');
const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** The blob: a SIF of 256 MiB (its system partition a little less), one layer of an ORAS push. */
const SIZE_TARGET = 256 * MiB;
const CONCURRENCY = (process.env.SERVE_CONCURRENCY ?? '16,64').split(',').map(Number);
const RUNS = Number(process.env.SERVE_RUNS ?? 1);

/** The pid and its children's pids (nginx's workers). */
async function family(pid: number): Promise<number[]> {
  const out = [pid];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) out.push(Number(name));
  }
  return out;
}

interface Target {
  name: string;
  url: string;
  /** Fetched before each measurement: a pull token lasts minutes, the section longer. */
  headers: () => Promise<string[]>;
  /** The processes whose CPU the serving costs (the server; nginx and its workers). */
  pids: number[];
  /** The process whose peak RSS is reported. */
  rssPid: number;
}

interface Result {
  mibps: number;
  cpuPerGiB: number;
  peakRssMiB: number;
}

/** Each ranged GET asks for this many bytes, at offsets spread over the blob. */
const RANGE_BYTES = 32 * MiB;

/**
 * `n` curl processes GET the URL at once (with `ranged`, a RANGE_BYTES range each); aggregate
 * throughput, CPU per GiB of the target's processes, peak RSS.
 */
async function measure(target: Target, n: number, size: number, ranged = false): Promise<Result> {
  const headers = await target.headers();
  const cpu0 = (await Promise.all(target.pids.map(cpuSeconds))).reduce((a, b) => a + b, 0);
  let peak = await rss(target.rssPid);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await rss(target.rssPid));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      new Promise<string>((resolve, reject) => {
        const start = ((i * 7 * MiB) % (size - RANGE_BYTES)) + (i % 3);
        const range = ranged ? ['-r', `${start}-${start + RANGE_BYTES - 1}`] : [];
        const child = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', ...range, ...headers.flatMap((h) => ['-H', h]), target.url], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('error', reject);
        child.on('close', () => resolve(out));
      }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  sampling = false;
  await sampler;
  const cpu1 = (await Promise.all(target.pids.map(cpuSeconds))).reduce((a, b) => a + b, 0);
  const want = ranged ? `206 ${RANGE_BYTES}` : `200 ${size}`;
  for (const r of results) if (r !== want) throw new Error(`${target.name}: a GET answered "${r}", not "${want}"`);
  const bytes = n * (ranged ? RANGE_BYTES : size);
  return { mibps: bytes / MiB / seconds, cpuPerGiB: (cpu1 - cpu0) / (bytes / GiB), peakRssMiB: peak / MiB };
}

/**
 * Issue 16's serving figures: 16 and 64 concurrent GETs (curl) of one 256 MiB blob from
 * Distribution (Debian's docker-registry 2.8.2), Shelf itself (OCI blob GET, Library download
 * link) and Shelf behind nginx with `blobsOffload: x-accel` (examples/nginx-offload.conf).
 */
export async function benchServe(workDir: string): Promise<string[]> {
  await mkdir(workDir, { recursive: true });
  const sif = path.join(workDir, 'serve.sif');
  await makeLargeSif(sif, workDir, SIZE_TARGET - 64 * 1024);
  const digest = `sha256:${await sha256File(sif)}`;
  const registry = await startDockerRegistry(path.join(workDir, 'registry'));
  const shelf = await startShelf({ dataDir: path.join(workDir, 'shelf-data') });
  const offShelf = await startShelf({ dataDir: path.join(workDir, 'offload-data'), env: { SHELF_BLOBS_OFFLOAD: 'x-accel', SHELF_TRUST_PROXY: 'loopback' } });
  const nginx = await startNginx((port) => offloadSite(path.join(ROOT, 'examples/nginx-offload.conf'), port, offShelf.url, path.join(offShelf.dataDir, 'blobs')), { workers: 'auto' });
  try {
    const ref = (host: string) => `${host}/admin/bench/serve:v1`;
    for (const [host, auth] of [
      [registry.host, []],
      [new URL(shelf.url).host, ['--user', 'admin', '--pass', ADMIN_TOKEN]],
      [new URL(nginx.url).host, ['--user', 'admin', '--pass', ADMIN_TOKEN]],
    ] as const) {
      const push = await run(ORAS, [...auth, 'push', sif, ref(host)], { timeoutMs: 600_000 });
      if (push.code !== 0) throw new Error(`push to ${host} failed: ${push.stderr}`);
    }
    const { size } = await stat(sif);
    const token = async (base: string) => {
      const res = await fetch(`${base}/v2/token?service=shelf&scope=repository:admin/bench/serve:pull`, { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` } });
      return ((await res.json()) as { token: string }).token;
    };
    const downloadLink = async (base: string) => {
      const res = await fetch(`${base}/v1/imagefile/admin/bench/serve:v1?arch=amd64`, { redirect: 'manual', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      if (res.status !== 303) throw new Error(`${base}: no download link (${res.status})`);
      return res.headers.get('location')!;
    };
    const nginxPids = async () => family(nginx.pid);
    const none = async () => [];
    const targets: Target[] = [
      { name: 'Distribution 2.8.2, blob GET', url: `http://${registry.host}/v2/admin/bench/serve/blobs/${digest}`, headers: none, pids: [registry.pid], rssPid: registry.pid },
      { name: 'Shelf, OCI blob GET', url: `${shelf.url}/v2/admin/bench/serve/blobs/${digest}`, headers: async () => [`Authorization: Bearer ${await token(shelf.url)}`], pids: [shelf.process.pid!], rssPid: shelf.process.pid! },
      { name: 'Shelf, Library download', url: await downloadLink(shelf.url), headers: none, pids: [shelf.process.pid!], rssPid: shelf.process.pid! },
      { name: 'Shelf + nginx x-accel, OCI blob GET', url: `${nginx.url}/v2/admin/bench/serve/blobs/${digest}`, headers: async () => [`Authorization: Bearer ${await token(nginx.url)}`], pids: [offShelf.process.pid!, ...(await nginxPids())], rssPid: offShelf.process.pid! },
      { name: 'Shelf + nginx x-accel, Library download', url: await downloadLink(nginx.url), headers: none, pids: [offShelf.process.pid!, ...(await nginxPids())], rssPid: offShelf.process.pid! },
    ];
    // Every byte in the page cache before the clock starts.
    for (const t of targets) await measure(t, 1, size);

    const rows: Array<{ name: string; n: number; ranged: boolean; r: Result }> = [];
    for (const ranged of [false, true]) {
      for (const n of CONCURRENCY) {
        for (const t of targets) {
          const runs: Result[] = [];
          for (let i = 0; i < RUNS; i++) runs.push(await measure(t, n, size, ranged));
          rows.push({ name: t.name, n, ranged, r: { mibps: median(runs.map((x) => x.mibps)), cpuPerGiB: median(runs.map((x) => x.cpuPerGiB)), peakRssMiB: Math.max(...runs.map((x) => x.peakRssMiB)) } });
        }
      }
    }
    const lines = [
      `serving: ${CONCURRENCY.join(' and ')} concurrent curl GETs of one ${(size / MiB).toFixed(0)} MiB blob, whole, then a ${RANGE_BYTES / MiB} MiB range each; median of ${RUNS} (targets: ≥ 1.00× Distribution's throughput, ≤ 1.25× its CPU per GiB)`,
      `  ${'server'.padEnd(42)} ${'GET'.padEnd(5)} ${'n'.padStart(3)} ${'MiB/s'.padStart(7)} ${'×Dist'.padStart(6)} ${'CPU-s/GiB'.padStart(9)} ${'×Dist'.padStart(6)} ${'peak RSS'.padStart(9)}  verdict`,
    ];
    for (const row of rows) {
      const base = rows.find((x) => x.n === row.n && x.ranged === row.ranged && x.name.startsWith('Distribution'))!.r;
      const tput = row.r.mibps / base.mibps;
      const cpu = row.r.cpuPerGiB / base.cpuPerGiB;
      const verdict = row.r === base ? 'baseline' : tput >= 1 && cpu <= 1.25 ? 'meets both' : `${tput >= 1 ? '' : 'throughput short'}${tput < 1 && cpu > 1.25 ? ', ' : ''}${cpu <= 1.25 ? '' : 'CPU over'}`;
      lines.push(
        `  ${row.name.padEnd(42)} ${(row.ranged ? 'range' : 'whole').padEnd(5)} ${String(row.n).padStart(3)} ${row.r.mibps.toFixed(0).padStart(7)} ${tput.toFixed(2).padStart(5)}× ${row.r.cpuPerGiB.toFixed(3).padStart(9)} ${cpu.toFixed(2).padStart(5)}× ${`${row.r.peakRssMiB.toFixed(0)} MiB`.padStart(9)}  ${verdict}`,
      );
    }
    lines.push('  (CPU: utime+stime of the server process, plus nginx master and workers behind nginx; peak RSS: the server process (Shelf or Distribution), sampled every 20 ms; the curl clients share the same cores)');
    return lines;
  } finally {
    await nginx.stop();
    await offShelf.stop();
    await shelf.stop();
    await registry.stop();
    await rm(sif, { force: true });
  }
}
