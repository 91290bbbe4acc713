import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { launchBrowser } from '../helpers/browser.js';
import { shelfCli, type ShelfCli } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { pushOciSif } from '../helpers/oci-sif.js';
import { startCountingProxy, type CountingProxy } from '../helpers/proxy.js';
import { run } from '../helpers/run.js';
import { makeLargeSif } from '../helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');
const orasclient = path.join(CLIENTS, 'orasclient');
const MiB = 2 ** 20;
const TTL = 6;
/** Room for the 8 MiB and the 12 MiB image, not both: the older goes. */
const QUOTA = 20 * MiB;

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * The pull-through cache with real upstreams on loopback — a second Shelf (library://) and
 * Debian's docker-registry (oras://), each behind the byte-counting proxy — and real clients
 * pulling from the cache: the Go library client, the Go ORAS client, skopeo.
 */
describe('pull-through cache', { concurrency: false }, () => {
  let upstream: TestShelf;
  let cache: TestShelf;
  let libProxy: CountingProxy;
  let regProxy: CountingProxy;
  let registry: { host: string; stop: () => Promise<void> };
  let cli: ShelfCli;
  let work: string;
  /** An upstream that answers every request with a 500, and one that accepts connections and never answers. */
  let failing: http.Server;
  let silent: net.Server;
  const silentSockets = new Set<net.Socket>();
  const STALL = 2;
  let big: string;
  const host = (s: { url: string }) => new URL(s.url).host;
  const pullLib = (ref: string, out: string, arch = 'amd64') => run(libclient, ['--url', cache.url, 'pull', '--arch', arch, ref, out]);
  const pushUp = async (file: string, ref: string) => {
    const r = await run(libclient, ['--url', upstream.url, '--token', ADMIN_TOKEN, 'push', file, ref]);
    assert.equal(r.code, 0, r.stderr);
  };

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'shelf-cache-'));
    cli = await shelfCli();
    upstream = await startShelf();
    registry = await startDockerRegistry(path.join(work, 'registry'));
    [libProxy, regProxy] = await Promise.all([startCountingProxy(upstream.url), startCountingProxy(`http://${registry.host}`)]);
    big = path.join(work, 'big.sif');
    await makeLargeSif(big, work, 8 * MiB);
    await pushUp(big, 'admin/up/app:v1');
    const orasPush = await cli.run(['push', path.join(FIXTURES, 'minimal-arm64.sif'), `oras://${registry.host}/site/images/hello:v1`]);
    assert.equal(orasPush.code, 0, orasPush.stderr);
    failing = http.createServer((_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('upstream on fire'));
    silent = net.createServer((socket) => void silentSockets.add(socket.on('error', () => undefined)));
    await Promise.all([new Promise<void>((r) => failing.listen(0, '127.0.0.1', r)), new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))]);
    const portOf = (server: net.Server | http.Server) => (server.address() as net.AddressInfo).port;
    const upstreams = [
      { namespace: 'hub/', url: `library://${host(libProxy)}/admin`, ttl: TTL },
      { namespace: 'reg/', url: `oras://${host(regProxy)}/site`, ttl: TTL },
      { namespace: 'priv/', url: `library://${host(libProxy)}/admin`, ttl: TTL, password: ADMIN_TOKEN },
      { namespace: 'anon/', url: `library://${host(libProxy)}/admin`, ttl: TTL },
      { namespace: 'fire/', url: `oras://127.0.0.1:${portOf(failing)}/site`, ttl: TTL },
      { namespace: 'stall/', url: `library://127.0.0.1:${portOf(silent)}/admin`, ttl: TTL, timeout: STALL },
    ];
    cache = await startShelf({ env: { SHELF_CACHE_UPSTREAMS: JSON.stringify(upstreams), SHELF_CACHE_QUOTA: String(QUOTA) } });
  });
  after(async () => {
    for (const socket of silentSockets) socket.destroy();
    await Promise.all([
      cache?.stop(),
      upstream?.stop(),
      registry?.stop(),
      libProxy?.close(),
      regProxy?.close().catch(() => undefined),
      new Promise((r) => (failing ? failing.close(r) : r(null))),
      new Promise((r) => (silent ? silent.close(r) : r(null))),
    ]);
    await rm(work, { recursive: true, force: true });
  });

  test('library://: 20 concurrent first pulls make one upstream fetch, and all get the bytes', async () => {
    libProxy.reset();
    const outs = Array.from({ length: 20 }, (_, i) => path.join(work, `lib-${i}.sif`));
    const results = await Promise.all(outs.map((out) => pullLib('hub/up/app:v1', out)));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const want = await sha256(big);
    for (const out of outs) assert.equal(await sha256(out), want);
    // One copy of the 8 MiB image crossed the proxy (plus small metadata requests), not 20.
    assert.ok(libProxy.down >= 8 * MiB && libProxy.down < 8 * MiB + 2 * MiB, `upstream sent ${libProxy.down} bytes`);
    const origin = (await (await api(cache, null)('/api/cache/origin/hub/up/app')).json()) as { data: { origin: { upstream: string } | null } };
    assert.equal(origin.data.origin?.upstream, `library://${host(libProxy)}/admin`);
    const pushed = (await (await api(cache, null)('/api/cache/origin/admin/none/here')).json()) as { error?: unknown };
    assert.ok(pushed.error, 'a missing container has no origin to tell');
    const entries = (await (await api(cache)('/api/cache')).json()) as { data: { entries: Array<{ path: string; size: number }> } };
    assert.equal(entries.data.entries.find((e) => e.path === 'hub/up/app')?.size, (await stat(big)).size);
    // A second round is served from the cache alone.
    libProxy.reset();
    const again = await pullLib('hub/up/app:v1', path.join(work, 'again.sif'));
    assert.equal(again.code, 0, again.stderr);
    assert.ok(libProxy.down < MiB, `second pull fetched ${libProxy.down} bytes upstream`);
  });

  test('the web UI shows where a cached container came from, and nothing for pushed content', async () => {
    const pushed = await run(libclient, ['--url', cache.url, '--token', ADMIN_TOKEN, 'push', path.join(FIXTURES, 'minimal-amd64.sif'), 'admin/own/img:v1']);
    assert.equal(pushed.code, 0, pushed.stderr);
    const browser = await launchBrowser();
    try {
      const { page } = browser;
      await page.goto(`${cache.url}/library/hub/up/app`);
      const note = page.locator('.cache-origin');
      await note.waitFor();
      assert.match(await note.innerText(), new RegExp(`Cached from library://${host(libProxy)}/admin`));
      await page.goto(`${cache.url}/library/admin/own/img`);
      await page.getByRole('heading', { name: 'Tags' }).waitFor();
      assert.equal(await page.locator('.cache-origin').count(), 0);
    } finally {
      await browser.close();
    }
  });

  test('upstream credentials: a private upstream container is fetched with the configured token, and stays private here', async () => {
    await pushUp(path.join(FIXTURES, 'minimal-arm64.sif'), 'admin/secret/app:v1');
    const hide = await api(upstream)('/api/visibility/admin/secret', { method: 'PUT', body: JSON.stringify({ private: true }), headers: { 'content-type': 'application/json' } });
    assert.equal(hide.status, 200, await hide.text());
    const out = path.join(work, 'secret.sif');
    const withToken = await run(libclient, ['--url', cache.url, '--token', ADMIN_TOKEN, 'pull', '--arch', 'arm64', 'priv/secret/app:v1', out]);
    assert.equal(withToken.code, 0, withToken.stderr);
    assert.equal(await sha256(out), await sha256(path.join(FIXTURES, 'minimal-arm64.sif')));
    // The copy keeps the upstream's privacy: anonymous callers here see nothing, as upstream.
    const anonymous = await api(cache, null)('/v1/images/priv/secret/app:v1?arch=arm64');
    assert.equal(anonymous.status, 404);
    assert.equal(((await (await api(cache)('/v1/collections/priv/secret')).json()) as { data: { private: boolean } }).data.private, true);
    // Without credentials the private upstream container is not there at all.
    const without = await run(libclient, ['--url', cache.url, '--token', ADMIN_TOKEN, 'pull', '--arch', 'arm64', 'anon/secret/app:v1', path.join(work, 'secret-anon.sif')]);
    assert.notEqual(without.code, 0);
    assert.match(without.stderr, /does not exist/);
    assert.equal((await api(cache)('/v1/containers/anon/secret/app')).status, 404);
  });

  test('an upstream answering 500 gives a 503 naming it, in each protocol envelope; nothing is cached', async () => {
    const oci = await api(cache, null)('/v2/fire/images/app/manifests/v1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(oci.status, 503);
    const body = (await oci.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]!.code, 'UNAVAILABLE');
    assert.match(body.errors[0]!.message, /upstream oras:\/\/127\.0\.0\.1:\d+\/site .*500/);
    const lib = await api(cache, null)('/v1/images/fire/images/app:v1?arch=amd64');
    assert.equal(lib.status, 503);
    assert.match(((await lib.json()) as { error: { message: string } }).error.message, /500/);
    assert.equal((await api(cache)('/v1/containers/fire/images/app')).status, 404);
  });

  test('an upstream that never answers is given up after its timeout; the server serves others meanwhile', async () => {
    const started = Date.now();
    const stalled = pullLib('stall/c/app:v1', path.join(work, 'stall.sif'));
    // While the fetch waits on the silent upstream, other requests are answered at once.
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    assert.equal((await api(cache, null)('/version')).status, 200);
    assert.ok(Date.now() - t0 < 1000);
    const r = await stalled;
    const took = (Date.now() - started) / 1000;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /sent nothing for 2 s/);
    assert.ok(took >= STALL && took < STALL + 10, `gave up after ${took} s`);
    const lib = await api(cache, null)('/v1/images/stall/c/app:v1?arch=amd64');
    assert.equal(lib.status, 503);
    assert.match(((await lib.json()) as { error: { code: number; message: string } }).error.message, /sent nothing/);
  });

  test('oras://: 20 concurrent first pulls make one upstream fetch', async () => {
    regProxy.reset();
    const outs = Array.from({ length: 20 }, (_, i) => path.join(work, `oras-${i}.sif`));
    const results = await Promise.all(outs.map((out) => run(orasclient, ['pull', `oras://${host(cache)}/reg/images/hello:v1`, out])));
    for (const r of results) assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    const fixture = path.join(FIXTURES, 'minimal-arm64.sif');
    const want = await sha256(fixture);
    for (const out of outs) assert.equal(await sha256(out), want);
    const size = (await stat(fixture)).size;
    assert.ok(regProxy.down >= size && regProxy.down < 2 * size + 64 * 1024, `upstream sent ${regProxy.down} bytes for a ${size}-byte image`);
  });

  test('docker:// (skopeo): a first pull of an uncached repository is fetched from the upstream', async () => {
    const fixture = path.join(FIXTURES, 'signed-pgp-rsa.sif');
    const pushed = await cli.run(['push', fixture, `oras://${registry.host}/site/images/skopeo:v1`]);
    assert.equal(pushed.code, 0, pushed.stderr);
    regProxy.reset();
    const out = path.join(work, 'skopeo-dir');
    const r = await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${host(cache)}/reg/images/skopeo:v1`, `dir:${out}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(regProxy.down >= (await stat(fixture)).size, `upstream sent ${regProxy.down} bytes`);
    assert.ok((await readdir(out)).includes(await sha256(fixture)), (await readdir(out)).join(','));

    // An OCI-SIF (squashfs layer, OCI config), as `singularity push … docker://` leaves it upstream.
    const { manifestDigest, layerDigest } = await pushOciSif(registry.host, 'site/images/ocisif', 'v1', work, 2 * MiB);
    regProxy.reset();
    const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host(cache)}/reg/images/ocisif:v1`]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`, manifestDigest);
    assert.ok(regProxy.down >= 2 * MiB, `upstream sent ${regProxy.down} bytes`);
    const ociOut = path.join(work, 'skopeo-ocisif');
    const copy = await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${host(cache)}/reg/images/ocisif:v1`, `dir:${ociOut}`]);
    assert.equal(copy.code, 0, copy.stderr);
    assert.ok((await readdir(ociOut)).includes(layerDigest.slice(7)));
  });

  test('docker:// (skopeo): 20 concurrent first pulls of an OCI-SIF make one upstream fetch', async () => {
    const size = 2 * MiB;
    const { layerDigest } = await pushOciSif(registry.host, 'site/images/crowd', 'v1', work, size);
    regProxy.reset();
    const outs = Array.from({ length: 20 }, (_, i) => path.join(work, `crowd-${i}`));
    const results = await Promise.all(outs.map((out) => run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${host(cache)}/reg/images/crowd:v1`, `dir:${out}`])));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    for (const out of outs) assert.ok((await readdir(out)).includes(layerDigest.slice(7)));
    assert.ok(regProxy.down >= size && regProxy.down < 2 * size, `upstream sent ${regProxy.down} bytes for a ${size}-byte layer`);
  });

  test('an upstream cut mid-transfer leaves nothing cached; the next pull succeeds', async () => {
    const big2 = path.join(work, 'big2.sif');
    await makeLargeSif(big2, work, 12 * MiB);
    await pushUp(big2, 'admin/up/cut:v1');
    libProxy.reset();
    let cutting = true;
    const cutter = (async () => {
      while (cutting) {
        await libProxy.whenDown(libProxy.down + MiB);
        if (cutting) libProxy.cut();
      }
    })();
    const failed = await pullLib('hub/up/cut:v1', path.join(work, 'cut.sif'));
    cutting = false;
    libProxy.cut();
    assert.notEqual(failed.code, 0, 'the pull through a cut upstream must fail');
    assert.match(failed.stderr, /upstream/i);
    const k = await api(cache)('/v1/containers/hub/up/cut');
    if (k.status === 200) {
      const body = (await k.json()) as { data: { archTags: Record<string, unknown>; images: string[] } };
      assert.deepEqual(body.data.archTags, {}, 'no tag points at a half-fetched image');
      assert.deepEqual(body.data.images, []);
    } else {
      assert.equal(k.status, 404);
    }
    void cutter;
    const ok = await pullLib('hub/up/cut:v1', path.join(work, 'cut-ok.sif'));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(await sha256(path.join(work, 'cut-ok.sif')), await sha256(big2));
  });

  test('a tag moved upstream is picked up after the TTL', async () => {
    await pushUp(path.join(FIXTURES, 'minimal-amd64.sif'), 'admin/up/moving:v1');
    const first = path.join(work, 'moving-1.sif');
    assert.equal((await pullLib('hub/up/moving:v1', first)).code, 0);
    const fetchedAt = Date.now();
    assert.equal(await sha256(first), await sha256(path.join(FIXTURES, 'minimal-amd64.sif')));
    await pushUp(path.join(FIXTURES, 'labels-object-amd64.sif'), 'admin/up/moving:v1');
    const second = path.join(work, 'moving-2.sif');
    assert.equal((await pullLib('hub/up/moving:v1', second)).code, 0);
    if (Date.now() - fetchedAt < (TTL - 1) * 1000) assert.equal(await sha256(second), await sha256(first), 'within the TTL the cached tag is served');
    await new Promise((r) => setTimeout(r, Math.max(0, TTL * 1000 - (Date.now() - fetchedAt)) + 500));
    const third = path.join(work, 'moving-3.sif');
    const r = await pullLib('hub/up/moving:v1', third);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(third), await sha256(path.join(FIXTURES, 'labels-object-amd64.sif')));
  });

  test('over the cache quota the least recently used container was evicted, and comes back on a pull', async () => {
    const { data } = (await (await api(cache)('/api/cache')).json()) as { data: { entries: Array<{ path: string; size: number }> } };
    const paths = data.entries.map((e) => e.path);
    assert.ok(!paths.includes('hub/up/app'), `hub/up/app (least recently used) should be gone: ${paths.join(', ')}`);
    assert.ok(paths.includes('hub/up/cut'));
    assert.ok(data.entries.reduce((sum, e) => sum + e.size, 0) <= QUOTA);
    const k = (await (await api(cache)('/v1/containers/hub/up/app')).json()) as { data: { archTags: Record<string, Record<string, string>> } };
    assert.deepEqual(Object.values(k.data.archTags).flatMap((t) => Object.keys(t)), []);
    libProxy.reset();
    const back = path.join(work, 'back.sif');
    const r = await pullLib('hub/up/app:v1', back);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(back), await sha256(big));
    assert.ok(libProxy.down >= 8 * MiB, `fetched ${libProxy.down} bytes again`);
  });

  test('wrong bytes from the upstream: a 503 in the envelope, nothing cached', async () => {
    const fixture = path.join(FIXTURES, 'labels-object-amd64.sif');
    const pushed = await cli.run(['push', fixture, `oras://${registry.host}/site/images/bad:v1`]);
    assert.equal(pushed.code, 0, pushed.stderr);
    // Rot in the upstream's storage: same length, one byte changed; Distribution serves it as it is.
    const hex = await sha256(fixture);
    const data = path.join(work, 'registry/storage/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const bytes = await readFile(data);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await writeFile(data, bytes);
    const res = await api(cache, null)('/v2/reg/images/bad/manifests/v1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(res.status, 503);
    const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]!.code, 'UNAVAILABLE');
    assert.match(body.errors[0]!.message, /hash|digest/i);
    const k = await api(cache)('/v1/containers/reg/images/bad');
    if (k.status === 200) assert.deepEqual(((await k.json()) as { data: { images: string[] } }).data.images, []);
    const lib = await pullLib('reg/images/bad:v1', path.join(work, 'bad.sif'));
    assert.notEqual(lib.code, 0);
  });

  test('pushes into a cached namespace are refused; unreachable upstreams answer in the protocol envelope', async () => {
    const res = await api(cache)('/v2/reg/images/hello/blobs/uploads/', { method: 'POST' });
    assert.equal(res.status, 403);
    const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]!.code, 'DENIED');
    await regProxy.close();
    const lib = await api(cache, null)('/v2/reg/images/other/manifests/v1');
    assert.equal(lib.status, 503);
    const err = (await lib.json()) as { errors: Array<{ code: string; message: string }> };
    assert.match(err.errors[0]!.message, /upstream/);
  });
});
