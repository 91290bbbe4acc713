import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openMetaDb } from '../src/meta/db.js';
import { seedLibrary, seededContainer, type Seeded } from '../test/helpers/bulk-seed.js';
import { ADMIN_TOKEN, PG_ADMIN_URL, ROOT, freshPostgres, startShelf, type DbKind } from '../test/helpers/shelf.js';
import { SHIPPED_NODE_OPTIONS } from './shipped.js';

/** Requests per measured read (after a warm-up of 20). */
const RUNS = Number(process.env.SCALE_RUNS ?? 300);
const SIZES = (process.env.SCALE_SIZES ?? '100000,1000000').split(',').map(Number).filter((n) => n > 0);
const DBS = (process.env.SCALE_DBS ?? 'sqlite,postgres').split(',') as DbKind[];
// SCALE_READS: a pattern; only the reads whose names match it are timed.

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;
const rand = (n: number) => Math.floor(Math.random() * n);

interface Read {
  name: string;
  /** p99 target in ms at 100 000 and at 1 000 000 images */
  target: [number, number];
  url: () => string;
  method?: string;
  token?: string | null;
}

/**
 * `npm run bench -- scale`: a library of SCALE_SIZES images (default 100 000 and 1 000 000) seeded
 * straight into the schema on SQLite and PostgreSQL, `shelf serve` on it, and p50/p99 of every
 * read path beside the targets, with the server's peak RSS.
 */
export async function benchScale(work: string): Promise<string[]> {
  const out: string[] = ['', 'scale: reads of a large library (p50 / p99 wall ms; CPU ms per request of the server process and, on PostgreSQL, of its backends; on a shared machine wall times are noisy)'];
  for (const db of DBS) {
    for (const size of SIZES) {
      out.push(...(await one(work, db, size)));
    }
  }
  return out;
}

/** Seeded libraries kept between runs (SCALE_FRESH=1 seeds again). */
const CACHE = path.join(ROOT, '.bench');

interface SeedRecord {
  /** The seeder's source hash: a changed seeder seeds again. */
  version: string;
  seeded: Seeded;
  seconds: number;
}

/**
 * The seeder's version: a hash of the seeder, which decides what a seeded library holds (schema
 * changes reach a cached library as migrations when the server opens it).
 */
async function seederVersion(): Promise<string> {
  return createHash('sha256').update(await readFile(path.join(ROOT, 'test/helpers/bulk-seed.ts'))).digest('hex').slice(0, 16);
}

async function cached(name: string): Promise<SeedRecord | null> {
  if (process.env.SCALE_FRESH === '1') return null;
  const record = await readFile(path.join(CACHE, `${name}.json`), 'utf8').then((t) => JSON.parse(t) as SeedRecord, () => null);
  return record && record.version === (await seederVersion()) ? record : null;
}

async function seed(dbUrl: string, size: number): Promise<{ seeded: Seeded; seconds: number }> {
  const started = performance.now();
  const meta = await openMetaDb(dbUrl);
  const seeded = await seedLibrary(meta.db, meta.dialect, { containers: size, ociTags: true });
  await meta.close();
  return { seeded, seconds: (performance.now() - started) / 1000 };
}

const pgAdmin = async <T>(f: (c: pg.Client) => Promise<T>): Promise<T> => {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
};

/**
 * A seeded library of `size` images for one run: SQLite a copy of the cached file, PostgreSQL a
 * database made from the cached one as a template; seeded (and cached) first when there is none.
 */
async function library(db: DbKind, size: number, dir: string): Promise<{ dbUrl: string; dbName: string | null; seeded: Seeded; seconds: number; fromCache: boolean; drop: () => Promise<void> }> {
  await mkdir(CACHE, { recursive: true });
  const name = `scale-${db}-${size}`;
  let record = await cached(name);
  const fromCache = record !== null;
  if (db === 'sqlite') {
    const file = path.join(CACHE, `${name}.db`);
    if (!record) {
      await rm(path.join(CACHE, `${name}.json`), { force: true });
      for (const f of [file, `${file}-wal`, `${file}-shm`]) await rm(f, { force: true });
      const { seeded, seconds } = await seed(`sqlite:${file}`, size);
      record = { version: await seederVersion(), seeded, seconds };
      await writeFile(path.join(CACHE, `${name}.json`), JSON.stringify(record));
    }
    await copyFile(file, path.join(dir, 'shelf.db'));
    return { dbUrl: `sqlite:${path.join(dir, 'shelf.db')}`, dbName: null, ...record, fromCache, drop: async () => {} };
  }
  const template = `shelf_bench_${name.replace(/-/g, '_')}`;
  if (record && !(await pgAdmin((c) => c.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]))).rowCount) record = null;
  if (!record) {
    await rm(path.join(CACHE, `${name}.json`), { force: true });
    await pgAdmin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${template}`);
    });
    const url = new URL(PG_ADMIN_URL);
    url.pathname = `/${template}`;
    const { seeded, seconds } = await seed(url.toString(), size);
    record = { version: await seederVersion(), seeded, seconds };
    await writeFile(path.join(CACHE, `${name}.json`), JSON.stringify(record));
  }
  const fresh = await freshPostgres();
  const runDb = new URL(fresh.url).pathname.slice(1);
  await pgAdmin(async (c) => {
    await c.query(`DROP DATABASE ${runDb}`);
    await c.query(`CREATE DATABASE ${runDb} TEMPLATE ${template}`);
  });
  return { dbUrl: fresh.url, dbName: runDb, ...record, fromCache, drop: fresh.drop };
}

async function one(work: string, db: DbKind, size: number): Promise<string[]> {
  const dir = path.join(work, `scale-${db}-${size}`);
  await mkdir(dir, { recursive: true });
  const lib = await library(db, size, dir);
  const { dbUrl, seeded } = lib;
  const seedNote = `${lib.fromCache ? 'seeded earlier' : 'seeded'} in ${lib.seconds.toFixed(0)} s`;
  console.log(`scale ${db} ${size}: ${seedNote}`);

  const probe = path.join(dir, 'memprobe.cjs');
  await writeFile(probe, MEMPROBE);
  const nodeOptions = [`--require ${probe} --expose-gc`, process.env.SCALE_NODE_OPTIONS ?? SHIPPED_NODE_OPTIONS].join(' ').trim();
  const shelf = await startShelf({ dbUrl, dataDir: dir, env: { NODE_OPTIONS: nodeOptions, MEMPROBE_OUT: path.join(dir, 'mem.json') } });
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const idle = await rssMb(shelf.process.pid!);
    const idleHeap = await heapOf(shelf.process.pid!, dir);
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const created = await fetch(`${shelf.url}/api/users/user${seeded.entities}/tokens`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'bench' }) });
    const memberToken = ((await created.json()) as { data: { token: string } }).data.token;
    const manifestPath = await pushManifest(shelf.url);

    const publicOne = () => {
      for (;;) {
        const k = seededContainer(rand(size));
        if (k.public) return k;
      }
    };
    const term = () => seededContainer(rand(size)).path.split('/')[2]!.slice(2);
    const reads: Read[] = [
      { name: 'Library search (member)', target: [20, 50], url: () => `/v1/search?value=${term()}`, token: memberToken },
      { name: 'Library search --arch arm64', target: [20, 50], url: () => `/v1/search?value=${term()}&arch=arm64`, token: memberToken },
      { name: 'Library search --signed', target: [20, 50], url: () => `/v1/search?value=${term()}&signed=true`, token: memberToken },
      { name: 'Library search, broad word', target: [20, 50], url: () => `/v1/search?value=gromacs&limit=50`, token: memberToken },
      { name: 'anonymous search', target: [20, 50], url: () => `/v1/search?value=${term()}`, token: null },
      { name: 'UI search', target: [20, 50], url: () => `/api/browse/search?q=${term()}&limit=20`, token: memberToken },
      { name: 'UI browse all --arch --signed', target: [10, 10], url: () => `/api/browse/search?q=&arch=arm64&signed=true&limit=20`, token: null },
      { name: 'browse recent page', target: [10, 10], url: () => `/api/browse/recent?limit=20`, token: memberToken },
      { name: 'browse collection page', target: [10, 10], url: () => `/api/browse/collections/${publicOne().path.split('/').slice(0, 2).join('/')}?limit=20`, token: null },
      { name: '/v2/_catalog?n=100 (from a random place)', target: [10, 10], url: () => `/v2/_catalog?n=100&last=e${rand(seeded.entities)}`, token: memberToken },
      { name: 'OCI tags list', target: [10, 10], url: () => `/v2/${publicOne().path}/tags/list?n=50`, token: memberToken },
      { name: 'Library image by tag', target: [10, 10], url: () => `/v1/images/${publicOne().path}:latest`, token: null },
      { name: 'OCI manifest HEAD', target: [10, 10], url: () => manifestPath, method: 'HEAD', token: memberToken },
    ];
    const lines = [
      `scale ${db}, ${size.toLocaleString('en')} images (${seedNote}; ${RUNS} requests each; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}):`,
      `  ${'read'.padEnd(42)} ${'p50'.padStart(7)} ${'p99'.padStart(7)} ${'cpu/req'.padStart(8)} ${'db cpu'.padStart(7)}  target p99`,
    ];
    const only = process.env.SCALE_READS ? new RegExp(process.env.SCALE_READS, 'i') : null;
    for (const read of reads.filter((r) => !only || only.test(r.name))) {
      const times: number[] = [];
      let cpuBefore = 0;
      let dbBefore = new Map<number, number>();
      for (let n = 0; n < RUNS + 20; n++) {
        if (n === 20) {
          cpuBefore = await cpuMs(shelf.process.pid!);
          dbBefore = await backendsCpu(lib.dbName);
        }
        const url = read.url();
        const started = performance.now();
        const res = await fetch(`${shelf.url}${url}`, { method: read.method ?? 'GET', headers: read.token ? { authorization: `Bearer ${read.token}` } : {} });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`${read.name}: ${url} answered ${res.status}`);
        if (n >= 20) times.push(performance.now() - started);
      }
      const cpu = (await cpuMs(shelf.process.pid!)) - cpuBefore;
      let dbCpu = 0;
      for (const [backend, ms] of await backendsCpu(lib.dbName)) dbCpu += ms - (dbBefore.get(backend) ?? 0);
      const target = size >= 1_000_000 ? read.target[1] : read.target[0];
      const p99 = pct(times, 99);
      lines.push(
        `  ${read.name.padEnd(42)} ${pct(times, 50).toFixed(1).padStart(7)} ${p99.toFixed(1).padStart(7)} ${(cpu / RUNS).toFixed(1).padStart(8)} ${lib.dbName ? (dbCpu / RUNS).toFixed(1).padStart(7) : '-'.padStart(7)}  < ${target} ms: wall ${p99 < target ? 'ok' : 'MISSED'}, cpu ${(cpu + dbCpu) / RUNS < target ? 'ok' : 'MISSED'}`,
      );
    }
    const status = await readFile(`/proc/${shelf.process.pid}/status`, 'utf8');
    const peak = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    const pid = shelf.process.pid!;
    const after = { rss: await rssMb(pid), anon: await rssMb(pid, 'RssAnon'), file: await rssMb(pid, 'RssFile') };
    const loadedHeap = await heapOf(pid, dir);
    lines.push(`  ${'server V8 heap idle'.padEnd(42)} ${idleHeap}`);
    lines.push(`  ${'server V8 heap after reads'.padEnd(42)} ${loadedHeap}`);
    lines.push(`  ${'server RSS idle after start / after reads'.padEnd(42)} ${idle.toFixed(0).padStart(7)} ${after.rss.toFixed(0).padStart(7)} MB (anonymous ${after.anon.toFixed(0)} MB, file ${after.file.toFixed(0)} MB)`);
    lines.push(`  ${'server peak RSS'.padEnd(42)} ${peak.toFixed(0).padStart(7)} MB          < 250 MB ${peak < 250 ? 'ok' : 'MISSED'}`);
    lines.forEach((l) => console.log(l));
    return lines;
  } finally {
    await shelf.stop();
    await lib.drop();
  }
}

/** PostgreSQL: CPU milliseconds used so far by each backend serving database `name` (none for SQLite). */
async function backendsCpu(name: string | null): Promise<Map<number, number>> {
  if (!name) return new Map();
  const { rows } = await pgAdmin((c) => c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name]));
  const out = new Map<number, number>();
  for (const { pid } of rows) out.set(pid, await cpuMs(pid).catch(() => 0));
  return out;
}

/**
 * CPU milliseconds the server process has used (user + system): on a shared machine, CPU per
 * request says more about the code than wall time does. The database server's share is not in it.
 */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Preloaded into the server: on SIGUSR2 it writes its memory breakdown (MB) to MEMPROBE_OUT. */
const MEMPROBE = `const v8 = require('node:v8');
const fs = require('node:fs');
process.on('SIGUSR2', () => {
  const m = process.memoryUsage();
  const space = (name) => Math.round((v8.getHeapSpaceStatistics().find((s) => s.space_name === name)?.space_size ?? 0) / 1048576);
  global.gc();
  const live = process.memoryUsage().heapUsed >> 20;
  fs.writeFileSync(process.env.MEMPROBE_OUT, JSON.stringify({ rss: m.rss >> 20, heapTotal: m.heapTotal >> 20, heapUsed: m.heapUsed >> 20, live, newSpace: space('new_space'), oldSpace: space('old_space'), external: m.external >> 20 }));
});
`;

/** The server's memory breakdown, as one line. */
async function heapOf(pid: number, dir: string): Promise<string> {
  const out = path.join(dir, 'mem.json');
  await rm(out, { force: true });
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const text = await readFile(out, 'utf8').catch(() => '');
    if (text) {
      const m = JSON.parse(text) as Record<string, number>;
      return `rss ${m.rss} MB: V8 heap ${m.heapTotal} MB (${m.heapUsed} used, ${m.live} live after a full GC; new space ${m.newSpace}, old space ${m.oldSpace}), external ${m.external} MB`;
    }
  }
  return 'no answer';
}

/** Resident set size of a process now, in MB. */
async function rssMb(pid: number, field = 'VmRSS'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
}

/** A small OCI image pushed into a seeded public repository, for manifest HEADs. */
async function pushManifest(url: string): Promise<string> {
  const repo = seededContainer(0).path;
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const put = async (bytes: Buffer) => {
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: bytes });
    if (res.status !== 201) throw new Error(`blob push: ${res.status} ${await res.text()}`);
    return { digest, size: bytes.length };
  };
  const config = await put(Buffer.from('{}'));
  const layer = await put(Buffer.from('bench layer'));
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
  });
  const res = await fetch(`${url}/v2/${repo}/manifests/bench`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  if (res.status !== 201) throw new Error(`manifest push: ${res.status} ${await res.text()}`);
  return `/v2/${repo}/manifests/bench`;
}
