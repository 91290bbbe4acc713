import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { offloadSite, startNginx, type TestNginx } from '../helpers/nginx.js';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, ROOT, api, startShelf, type TestShelf } from '../helpers/shelf.js';
import { makeLargeSif } from '../helpers/sif.js';

const libclient = path.join(CLIENTS, 'libclient');
const oras = path.join(CLIENTS, 'orasclient');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const fileSha = async (f: string) => sha256(await readFile(f));
const fixture = (name: string) => path.join(FIXTURES, name);
const EXAMPLE = path.join(ROOT, 'examples/nginx-offload.conf');

// No skip when nginx is missing: CI installs it (scripts/system-deps.sh), and startNginx fails loudly.
describe('blobsOffload: x-accel behind the nginx of examples/nginx-offload.conf', { concurrency: false }, () => {
  let shelf: TestShelf;
  let nginx: TestNginx;
  let work: string;
  let big: string;
  const creds = ['--user', 'admin', '--pass', ADMIN_TOKEN];
  const lib = (args: string[], token: string | null = ADMIN_TOKEN) => run(libclient, ['--url', nginx.url, ...(token ? ['--token', token] : []), ...args]);
  const host = () => new URL(nginx.url).host;
  /** A fetch through nginx, with the admin token unless `token` is null. */
  const viaNginx = (pathname: string, init: RequestInit = {}, token: string | null = ADMIN_TOKEN) => api(nginx, token)(pathname, init);
  const bearer = async (repo: string) => {
    const res = await fetch(`${nginx.url}/v2/token?service=shelf&scope=repository:${repo}:pull`, { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` } });
    return ((await res.json()) as { token: string }).token;
  };

  before(async () => {
    shelf = await startShelf({ env: { SHELF_BLOBS_OFFLOAD: 'x-accel', SHELF_TRUST_PROXY: 'loopback' } });
    nginx = await startNginx((port) => offloadSite(EXAMPLE, port, shelf.url, path.join(shelf.dataDir, 'blobs')));
    work = await mkdtemp(path.join(tmpdir(), 'shelf-offload-'));
    big = path.join(work, 'big.sif');
    // Over the 64 MiB part size: a multipart push, and a concurrent ranged pull.
    await makeLargeSif(big, work, 70 * 2 ** 20);
  });
  after(async () => {
    await nginx?.stop();
    await shelf?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('docs/operations.md shows examples/nginx-offload.conf as it is', async () => {
    const docs = await readFile(path.join(ROOT, 'docs/operations.md'), 'utf8');
    assert.ok(docs.includes(`\`\`\`nginx\n${await readFile(EXAMPLE, 'utf8')}\`\`\``), 'the nginx block of "Offloading downloads to nginx" differs from the example');
  });

  test('the Library client pushes and pulls through nginx byte-identical; Shelf itself sends no bytes', async () => {
    for (const [file, ref] of [[fixture('minimal-amd64.sif'), 'admin/off/minimal:v1'], [big, 'admin/off/big:v1']] as const) {
      const push = await lib(['push', file, ref]);
      assert.equal(push.code, 0, push.stderr);
      for (const mode of [['--single'], ['--concurrency', '4', '--part-size', String(5 * 2 ** 20)]]) {
        const out = path.join(work, `pulled-${mode[0]}.sif`);
        const pull = await lib(['pull', ref, out, '--arch', 'amd64', ...mode], null);
        assert.equal(pull.code, 0, `${ref} ${mode.join(' ')}: ${pull.stderr}`);
        assert.equal(await fileSha(out), await fileSha(file), `${ref} ${mode.join(' ')}`);
      }
    }
    // Straight to Shelf: the redirect to the file, and an empty body.
    const link = await api(shelf)('/v1/imagefile/admin/off/big:v1?arch=amd64', { redirect: 'manual' });
    assert.equal(link.status, 303);
    const direct = await fetch(link.headers.get('location')!.replace(nginx.url, shelf.url));
    assert.equal(direct.status, 200);
    const digest = `sha256:${await fileSha(big)}`;
    assert.equal(direct.headers.get('x-accel-redirect'), `/_shelf_blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`);
    assert.equal((await direct.arrayBuffer()).byteLength, 0);
    // nginx sent the whole file (its log counts body bytes).
    const size = (await readFile(big)).length;
    assert.match(await readFile(path.join(nginx.dir, 'logs/access.log'), 'utf8'), new RegExp(`GET /v1/imagefile/_download/\\S+ HTTP/1\\.1" 200 ${size} `));
  });

  test('oras pushes and pulls through nginx byte-identical', async () => {
    for (const [file, tag] of [[fixture('minimal-arm64.sif'), 'small'], [big, 'big']] as const) {
      const push = await run(oras, [...creds, 'push', file, `${host()}/admin/oras/off:${tag}`]);
      assert.equal(push.code, 0, push.stderr);
      const out = path.join(work, `oras-${tag}.sif`);
      const pull = await run(oras, [...creds, 'pull', `${host()}/admin/oras/off:${tag}`, out]);
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(await fileSha(out), await fileSha(file));
    }
  });

  test('Range through nginx: exact slices with 206 and Content-Range, on both download paths; the headers Shelf set', async () => {
    const bytes = await readFile(big);
    const size = bytes.length;
    const digest = `sha256:${sha256(bytes)}`;
    const token = await bearer('admin/oras/off');
    const link = await viaNginx('/v1/imagefile/admin/off/big:v1?arch=amd64', { redirect: 'manual' });
    assert.equal(link.status, 303);
    const download = `${link.headers.get('location')!}?filename=big.sif`;
    assert.ok(download.startsWith(`${nginx.url}/v1/imagefile/_download/`), download);
    const blobUrl = `${nginx.url}/v2/admin/oras/off/blobs/${digest}`;
    const auth = { authorization: `Bearer ${token}` };
    const cases: Array<[string, number, number]> = [
      ['bytes=0-0', 0, 0],
      ['bytes=100-1099', 100, 1099],
      [`bytes=${size - 5000}-`, size - 5000, size - 1],
      ['bytes=-777', size - 777, size - 1],
      [`bytes=${30 * 2 ** 20}-${35 * 2 ** 20 - 1}`, 30 * 2 ** 20, 35 * 2 ** 20 - 1],
    ];
    for (const url of [download, blobUrl]) {
      for (const [range, start, end] of cases) {
        const res = await fetch(url, { headers: { ...auth, range } });
        assert.equal(res.status, 206, `${url} ${range}`);
        assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${size}`, `${url} ${range}`);
        const body = Buffer.from(await res.arrayBuffer());
        assert.equal(body.length, end - start + 1);
        assert.ok(body.equals(bytes.subarray(start, end + 1)), `${url} ${range}: wrong bytes`);
      }
      const whole = await fetch(url, { headers: auth });
      assert.equal(whole.status, 200);
      assert.equal(whole.headers.get('content-type'), 'application/octet-stream');
      assert.equal(whole.headers.get('accept-ranges'), 'bytes');
      assert.equal(Number(whole.headers.get('content-length')), size);
      assert.equal(whole.headers.get('x-accel-redirect'), null);
      assert.equal(sha256(Buffer.from(await whole.arrayBuffer())), digest.slice(7));
      // Past the end: Shelf's own answer, as without offload.
      const beyond = await fetch(url, { headers: { ...auth, range: `bytes=${size}-` } });
      assert.equal(beyond.status, 416);
      assert.equal(beyond.headers.get('content-range'), `bytes */${size}`);
    }
    const lib = await fetch(download);
    assert.equal(lib.headers.get('content-disposition'), 'attachment; filename="big.sif"');
    await lib.body?.cancel();
    const oci = await fetch(blobUrl, { headers: auth });
    assert.equal(oci.headers.get('docker-content-digest'), digest);
    assert.equal(oci.headers.get('etag'), `"${digest}"`);
    await oci.body?.cancel();
    // HEAD stays Shelf's: the size, and no body nor redirect.
    const head = await fetch(blobUrl, { method: 'HEAD', headers: auth });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get('content-length')), size);
    assert.equal(head.headers.get('docker-content-digest'), digest);
  });

  test('the download counter and the metrics count pulls through nginx, Library and OCI', async () => {
    // The example lets only the monitoring network read /metrics through nginx: asked of Shelf.
    const metric = async (line: RegExp) => {
      const text = await (await fetch(`${shelf.url}/metrics`)).text();
      return Number(line.exec(text)?.[1] ?? 0);
    };
    const pulls0 = await metric(/^shelf_image_operations_total\{protocol="library",operation="pull"\} (\d+)/m);
    const handed0 = await metric(/^shelf_http_offloaded_bytes_total\{protocol="library"\} (\d+)/m);
    const count = async () => {
      const res = await viaNginx('/v1/containers/admin/off/big');
      return ((await res.json()) as { data: { downloadCount: number } }).data.downloadCount;
    };
    // Counts reach the database within a few seconds (batched).
    const settled = async (want?: number) => {
      let last = -1;
      for (let i = 0; i < 100; i++) {
        const n = await count();
        if (want !== undefined ? n >= want : n === last) return n;
        last = n;
        await new Promise((r) => setTimeout(r, 2500));
      }
      return last;
    };
    const before = await settled();
    const pull = await lib(['pull', 'admin/off/big:v1', path.join(work, 'count.sif'), '--arch', 'amd64', '--single'], null);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await settled(before + 1), before + 1);
    const size = (await readFile(big)).length;
    assert.equal(await metric(/^shelf_image_operations_total\{protocol="library",operation="pull"\} (\d+)/m), pulls0 + 1);
    assert.equal(await metric(/^shelf_http_offloaded_bytes_total\{protocol="library"\} (\d+)/m), handed0 + size);
    // The same bytes pulled through the registry count for the container that holds them as an image.
    const token = await bearer('admin/off/big');
    const blob = await fetch(`${nginx.url}/v2/admin/off/big/blobs/sha256:${await fileSha(big)}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(blob.status, 200);
    await blob.arrayBuffer();
    assert.equal(await settled(before + 2), before + 2);
  });

  test('a private image is refused through nginx as by Shelf itself; the internal location is not served from outside', async () => {
    const push = await lib(['push', fixture('minimal-amd64.sif'), 'admin/secret/img:v1']);
    assert.equal(push.code, 0, push.stderr);
    const vis = await viaNginx('/api/visibility/admin/secret', { method: 'PUT', body: JSON.stringify({ private: true }), headers: { 'content-type': 'application/json' } });
    assert.equal(vis.status, 200);
    const digest = `sha256:${await fileSha(fixture('minimal-amd64.sif'))}`;
    for (const pathname of ['/v1/imagefile/admin/secret/img:v1?arch=amd64', `/v2/admin/secret/img/blobs/${digest}`]) {
      const direct = await fetch(`${shelf.url}${pathname}`, { redirect: 'manual' });
      const proxied = await fetch(`${nginx.url}${pathname}`, { redirect: 'manual' });
      assert.ok([401, 403, 404].includes(proxied.status), `${pathname}: ${proxied.status}`);
      assert.equal(proxied.status, direct.status, pathname);
      assert.equal(proxied.headers.get('x-accel-redirect'), null);
      assert.doesNotMatch(Buffer.from(await proxied.arrayBuffer()).toString('latin1'), /SIF_MAGIC/);
    }
    // Its owner still gets it.
    const out = path.join(work, 'secret.sif');
    const pull = await lib(['pull', 'admin/secret/img:v1', out, '--arch', 'amd64']);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await fileSha(out), digest.slice(7));
    // The file's internal URI, asked for by a client, with and without credentials.
    const internal = `/_shelf_blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;
    for (const token of [null, ADMIN_TOKEN]) {
      const res = await viaNginx(internal, {}, token);
      assert.equal(res.status, 404);
      assert.doesNotMatch(Buffer.from(await res.arrayBuffer()).toString('latin1'), /SIF_MAGIC/);
    }
    // A forged X-Accel-Redirect in a request changes nothing.
    const forged = await fetch(`${nginx.url}/v2/`, { headers: { 'x-accel-redirect': internal } });
    assert.equal(forged.status, 401);
    await forged.arrayBuffer();
  });
});
