import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const METRICS_TOKEN = 'metrics-scrape-token-0123456789';
const libclient = path.join(CLIENTS, 'libclient');
const oras = path.join(CLIENTS, 'orasclient');
const fixture = (name: string) => path.join(FIXTURES, name);

/** `name{a="b",…} value` lines of a Prometheus text exposition, as a lookup by series. */
function parse(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    series.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return series;
}

/** The sum of every series of `name` whose labels include all of `labels`. */
function total(series: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [key, value] of series) {
    const m = /^([^{]+)(?:\{(.*)\})?$/.exec(key)!;
    if (m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += value;
  }
  return sum;
}

describe('Prometheus metrics at /metrics', { concurrency: false }, () => {
  let shelf: TestShelf;
  let work: string;
  const scrape = async () => {
    const res = await fetch(`${shelf.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parse(await res.text());
  };

  before(async () => {
    shelf = await startShelf({ env: { SHELF_METRICS_TOKEN: METRICS_TOKEN, SHELF_GC_GRACE: '0', SHELF_GC_INTERVAL: '0', SHELF_METRICS_QUOTA_INTERVAL: '0' } });
    work = await mkdtemp(path.join(tmpdir(), 'shelf-metrics-'));
  });
  after(async () => {
    await shelf?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('the bearer token is required when metrics.token is set', async () => {
    assert.equal((await fetch(`${shelf.url}/metrics`)).status, 401);
    assert.equal((await fetch(`${shelf.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status, 401);
    assert.equal((await fetch(`${shelf.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 401, 'an API token is not the scrape token');
    await scrape();
  });

  test('pushes and pulls with the real Library and ORAS clients move the request, byte, operation and quota series', async () => {
    const file = fixture('minimal-amd64.sif');
    const size = (await stat(file)).size;
    const before = await scrape();

    const push = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', file, 'admin/metrics/lib:v1']);
    assert.equal(push.code, 0, push.stderr);
    const pulled = path.join(work, 'lib.sif');
    const pull = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'pull', 'admin/metrics/lib:v1', pulled]);
    assert.equal(pull.code, 0, pull.stderr);
    const other = fixture('minimal-arm64.sif');
    const host = new URL(shelf.url).host;
    const opush = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'push', other, `${host}/admin/metrics/oras:v1`]);
    assert.equal(opush.code, 0, opush.stderr);
    const opulled = path.join(work, 'oras.sif');
    const opull = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'pull', `${host}/admin/metrics/oras:v1`, opulled]);
    assert.equal(opull.code, 0, opull.stderr);
    assert.deepEqual(await readFile(opulled), await readFile(other));
    const del = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'delete', 'admin/metrics/lib:v1', '--arch', 'amd64']);
    assert.equal(del.code, 0, del.stderr);

    const after = await scrape();
    const moved = (name: string, labels: Record<string, string>) => total(after, name, labels) - total(before, name, labels);
    assert.equal(moved('shelf_image_operations_total', { protocol: 'library', operation: 'push' }), 1);
    assert.equal(moved('shelf_image_operations_total', { protocol: 'library', operation: 'pull' }), 1);
    assert.equal(moved('shelf_image_operations_total', { protocol: 'library', operation: 'delete' }), 1);
    assert.equal(moved('shelf_image_operations_total', { protocol: 'oci', operation: 'push' }), 1);
    assert.ok(moved('shelf_image_operations_total', { protocol: 'oci', operation: 'pull' }) >= 1);
    assert.ok(moved('shelf_http_received_bytes_total', { protocol: 'library' }) >= size, 'the SIF was received');
    assert.ok(moved('shelf_http_sent_bytes_total', { protocol: 'library' }) >= size, 'the SIF was served');
    assert.ok(moved('shelf_http_received_bytes_total', { protocol: 'oci' }) >= (await stat(other)).size);
    assert.ok(moved('shelf_http_requests_total', { protocol: 'oci', route: '/v2/:name/manifests/:reference', method: 'PUT', status: '201' }) >= 1);
    assert.ok(moved('shelf_http_request_duration_seconds_count', { protocol: 'library', route: '/v1/imagefile/*', method: 'GET' }) >= 1);
    assert.ok(total(after, 'shelf_quota_used_bytes', { entity: 'admin' }) >= (await stat(other)).size);
    assert.equal(total(after, 'shelf_uploads_in_flight'), 0);
  });

  test('an upload in flight is counted while its body streams, and no longer once it ends', async () => {
    const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const post = await fetch(`${shelf.url}/v2/admin/metrics/slow/blobs/uploads/`, { method: 'POST', headers: auth });
    assert.equal(post.status, 202);
    const location = new URL(post.headers.get('location')!, shelf.url);
    const req = http.request(location, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/octet-stream' } });
    const done = new Promise<number>((resolve, reject) => req.on('response', (res) => (res.resume(), resolve(res.statusCode!))).on('error', reject));
    req.write(Buffer.alloc(4096, 1));
    let inFlight = 0;
    for (let i = 0; i < 50 && inFlight === 0; i++) {
      inFlight = total(await scrape(), 'shelf_uploads_in_flight', { protocol: 'oci' });
      if (!inFlight) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(inFlight, 1);
    req.end(Buffer.alloc(4096, 2));
    assert.equal(await done, 202);
    assert.equal(total(await scrape(), 'shelf_uploads_in_flight', { protocol: 'oci' }), 0);
  });

  test('garbage collection runs and the bytes they free are counted', async () => {
    const before = await scrape();
    const gc = await api(shelf)('/api/admin/gc', { method: 'POST', body: JSON.stringify({}) });
    assert.equal(gc.status, 200);
    const { data } = (await gc.json()) as { data: { bytesFreed: number } };
    assert.ok(data.bytesFreed > 0, 'the deleted image is freed');
    const after = await scrape();
    assert.equal(total(after, 'shelf_gc_runs_total') - total(before, 'shelf_gc_runs_total'), 1);
    assert.equal(total(after, 'shelf_gc_freed_bytes_total') - total(before, 'shelf_gc_freed_bytes_total'), data.bytesFreed);
    const dry = await api(shelf)('/api/admin/gc', { method: 'POST', body: JSON.stringify({ dryRun: true }) });
    assert.equal(dry.status, 200);
    assert.equal(total(await scrape(), 'shelf_gc_runs_total'), total(after, 'shelf_gc_runs_total'), 'dry runs are not counted');
  });

  test('a failing blob store shows in shelf_blob_store_errors_total', async () => {
    const before = total(await scrape(), 'shelf_blob_store_errors_total');
    const blobs = path.join(shelf.dataDir, 'blobs');
    await rename(blobs, `${blobs}.away`);
    await writeFile(blobs, 'not a folder');
    try {
      const host = new URL(shelf.url).host;
      const pull = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'pull', `${host}/admin/metrics/oras:v1`, path.join(work, 'fails.sif')]);
      assert.notEqual(pull.code, 0);
    } finally {
      await rm(blobs);
      await rename(`${blobs}.away`, blobs);
    }
    assert.ok(total(await scrape(), 'shelf_blob_store_errors_total') > before);
  });

  test('every series the example Grafana dashboard queries is exported', async () => {
    const dashboard = await readFile(path.join(import.meta.dirname, '../../docs/grafana-dashboard.json'), 'utf8');
    JSON.parse(dashboard);
    const used = new Set([...dashboard.matchAll(/shelf_[a-z_]+/g)].map((m) => m[0].replace(/_bucket$/, '')));
    const text = await (await fetch(`${shelf.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
    assert.ok(used.size >= 10);
    // This server runs on SQLite: the PostgreSQL pool series is the one it does not have.
    for (const name of used) if (name !== 'shelf_database_pool_connections') assert.ok(exported.has(name), `${name} is not exported`);
    assert.ok(!exported.has('shelf_database_pool_connections'));
  });

  test('the build queue depth series is there (0 until a builder sets it)', async () => {
    assert.equal((await scrape()).get('shelf_build_queue_depth'), 0);
  });
});

describe('metrics on PostgreSQL: the connection pool', () => {
  let shelf: TestShelf;
  before(async () => {
    shelf = await startShelf({ db: 'postgres', env: { SHELF_METRICS_TOKEN: METRICS_TOKEN } });
  });
  after(async () => shelf?.stop());

  test('shelf_database_pool_connections counts the pool by state, and the error counter is there', async () => {
    // Some traffic first, so the pool holds connections.
    await Promise.all(Array.from({ length: 8 }, () => fetch(`${shelf.url}/v1/search?value=x`).then((r) => r.arrayBuffer())));
    const text = await (await fetch(`${shelf.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    const value = (state: string) => Number(new RegExp(`^shelf_database_pool_connections\\{state="${state}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    assert.ok(value('total') >= 1, text.split('\n').filter((l) => l.includes('pool')).join('\n'));
    assert.ok(value('idle') >= 0 && value('idle') <= value('total'));
    assert.ok(value('waiting') >= 0);
    assert.match(text, /^# TYPE shelf_database_errors_total counter/m);
  });
});
