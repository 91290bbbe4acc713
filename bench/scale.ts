import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { openMetaDb } from '../src/meta/db.js';
import { seedLibrary, seededContainer } from '../test/helpers/bulk-seed.js';
import { ADMIN_TOKEN, freshPostgres, startShelf, type DbKind } from '../test/helpers/shelf.js';

/** Requests per measured read (after a warm-up of 20). */
const RUNS = Number(process.env.SCALE_RUNS ?? 300);
const SIZES = (process.env.SCALE_SIZES ?? '100000,1000000').split(',').map(Number).filter((n) => n > 0);
const DBS = (process.env.SCALE_DBS ?? 'sqlite,postgres').split(',') as DbKind[];

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
  const out: string[] = ['', 'scale: reads of a large library (p50 / p99 wall ms, server CPU ms per request; on a shared machine wall times are noisy)'];
  for (const db of DBS) {
    for (const size of SIZES) {
      out.push(...(await one(work, db, size)));
    }
  }
  return out;
}

async function one(work: string, db: DbKind, size: number): Promise<string[]> {
  const dir = path.join(work, `scale-${db}-${size}`);
  await mkdir(dir, { recursive: true });
  const pg = db === 'postgres' ? await freshPostgres() : null;
  const dbUrl = pg ? pg.url : `sqlite:${path.join(dir, 'shelf.db')}`;
  const seedStart = performance.now();
  const meta = await openMetaDb(dbUrl);
  const seeded = await seedLibrary(meta.db, meta.dialect, { containers: size, ociTags: true });
  await meta.close();
  const seedSeconds = (performance.now() - seedStart) / 1000;
  console.log(`scale ${db} ${size}: seeded in ${seedSeconds.toFixed(0)} s`);

  const shelf = await startShelf({ dbUrl, dataDir: dir });
  try {
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
      `scale ${db}, ${size.toLocaleString('en')} images (seeded in ${seedSeconds.toFixed(0)} s; ${RUNS} requests each):`,
      `  ${'read'.padEnd(42)} ${'p50'.padStart(7)} ${'p99'.padStart(7)} ${'cpu/req'.padStart(8)}  target p99`,
    ];
    for (const read of reads) {
      const times: number[] = [];
      let cpuBefore = 0;
      for (let n = 0; n < RUNS + 20; n++) {
        if (n === 20) cpuBefore = await cpuMs(shelf.process.pid!);
        const url = read.url();
        const started = performance.now();
        const res = await fetch(`${shelf.url}${url}`, { method: read.method ?? 'GET', headers: read.token ? { authorization: `Bearer ${read.token}` } : {} });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`${read.name}: ${url} answered ${res.status}`);
        if (n >= 20) times.push(performance.now() - started);
      }
      const cpu = (await cpuMs(shelf.process.pid!)) - cpuBefore;
      const target = size >= 1_000_000 ? read.target[1] : read.target[0];
      const p99 = pct(times, 99);
      lines.push(
        `  ${read.name.padEnd(42)} ${pct(times, 50).toFixed(1).padStart(7)} ${p99.toFixed(1).padStart(7)} ${(cpu / RUNS).toFixed(1).padStart(8)}  < ${target} ms ${p99 < target ? 'ok' : 'MISSED'}`,
      );
    }
    const status = await readFile(`/proc/${shelf.process.pid}/status`, 'utf8');
    const peak = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    lines.push(`  ${'server peak RSS'.padEnd(42)} ${peak.toFixed(0).padStart(7)} MB          < 250 MB ${peak < 250 ? 'ok' : 'MISSED'}`);
    lines.forEach((l) => console.log(l));
    return lines;
  } finally {
    await shelf.stop();
    await pg?.drop();
  }
}

/**
 * CPU milliseconds the server process has used (user + system): on a shared machine, CPU per
 * request says more about the code than wall time does. The database server's share is not in it.
 */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
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
