import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { makeLargeSif } from '../helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, startShelf, type TestShelf } from '../helpers/shelf.js';

const oras = path.join(CLIENTS, 'orasclient');
const libclient = path.join(CLIENTS, 'libclient');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const fileSha = async (f: string) => sha256(await readFile(f));
const fixture = (name: string) => path.join(FIXTURES, name);
const host = (shelf: TestShelf) => new URL(shelf.url).host;

describe('real OCI clients against Shelf (bearer tokens)', { concurrency: false }, () => {
  let shelf: TestShelf;
  let work: string;
  const creds = ['--user', 'admin', '--pass', ADMIN_TOKEN];

  before(async () => {
    shelf = await startShelf();
    work = await mkdtemp(path.join(tmpdir(), 'shelf-oci-'));
  });
  after(async () => {
    await shelf?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('oras push (both manifest styles) and pull by tag and by digest, anonymous and with a token', async () => {
    const file = fixture('minimal-amd64.sif');
    const old = await run(oras, [...creds, 'push', file, `oras://${host(shelf)}/admin/oras/minimal:old`]);
    assert.equal(old.code, 0, old.stderr);
    const modern = await run(oras, [...creds, 'push', file, `${host(shelf)}/admin/oras/minimal:modern`, '--config-media-type', 'application/vnd.sylabs.sif.config.v1+json', '--annotation', 'org.opencontainers.image.created=2026-01-01T00:00:00Z', '--json']);
    assert.equal(modern.code, 0, modern.stderr);
    for (const tag of ['old', 'modern']) {
      const out = path.join(work, `${tag}.sif`);
      const pull = await run(oras, ['pull', `oras://${host(shelf)}/admin/oras/minimal:${tag}`, out]);
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(await fileSha(out), await fileSha(file));
    }
    const manifestDigest = old.stdout.trim().split(/\s+/).pop()!;
    assert.match(manifestDigest, /^sha256:[0-9a-f]{64}$/);
    const byDigest = path.join(work, 'bydigest.sif');
    const pull = await run(oras, [...creds, 'pull', `${host(shelf)}/admin/oras/minimal@${manifestDigest}`, byDigest]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await fileSha(byDigest), await fileSha(file));
    const digest = await run(oras, ['digest', `${host(shelf)}/admin/oras/minimal:old`]);
    assert.equal(digest.stdout.trim(), `sha256:${await fileSha(file)}`);
  });

  test('login stores the credentials; a wrong password is refused; pushes without credentials are refused', async () => {
    const cfg = path.join(work, 'docker-config.json');
    const bad = await run(oras, ['login', host(shelf), '--user', 'admin', '--pass', 'wrong', '--docker-config', cfg]);
    assert.notEqual(bad.code, 0);
    const login = await run(oras, ['login', host(shelf), '--user', 'admin', '--pass', ADMIN_TOKEN, '--docker-config', cfg]);
    assert.equal(login.code, 0, login.stderr);
    const push = await run(oras, ['--docker-config', cfg, 'push', fixture('minimal-arm64.sif'), `${host(shelf)}/admin/oras/viacfg:v1`]);
    assert.equal(push.code, 0, push.stderr);
    const anon = await run(oras, ['--docker-config', path.join(work, 'none.json'), 'push', fixture('minimal-arm64.sif'), `${host(shelf)}/admin/oras/anon:v1`]);
    assert.notEqual(anon.code, 0);
  });

  test('oras push → Library pull and search; Library push → oras pull; bytes stored once', async () => {
    const file = fixture('apptainer-layout-amd64.sif');
    const push = await run(oras, [...creds, 'push', file, `${host(shelf)}/admin/bridge/layout:v1`]);
    assert.equal(push.code, 0, push.stderr);
    const out = path.join(work, 'bridge-lib.sif');
    const pull = await run(libclient, ['--url', shelf.url, 'pull', 'admin/bridge/layout:v1', out, '--arch', 'amd64']);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await fileSha(out), await fileSha(file));
    const image = JSON.parse((await run(libclient, ['--url', shelf.url, 'image', 'admin/bridge/layout:v1', '--arch', 'amd64'])).stdout) as { arch: string; size: number };
    assert.equal(image.arch, 'amd64');
    assert.equal(image.size, 40960);
    const search = await run(libclient, ['--url', shelf.url, 'search', 'layout', '--arch', 'amd64']);
    assert.match(search.stdout, /library:\/\/admin\/bridge\/layout:v1/);

    const libPush = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', fixture('labels-object-amd64.sif'), 'admin/bridge/labels:v2']);
    assert.equal(libPush.code, 0, libPush.stderr);
    const orasOut = path.join(work, 'bridge-oras.sif');
    const orasPull = await run(oras, ['pull', `${host(shelf)}/admin/bridge/labels:v2`, orasOut]);
    assert.equal(orasPull.code, 0, orasPull.stderr);
    assert.equal(await fileSha(orasOut), await fileSha(fixture('labels-object-amd64.sif')));
    const auth = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` };
    const manifest = (await (await fetch(`${shelf.url}/v2/admin/bridge/labels/manifests/v2`, { headers: auth })).json()) as {
      config: { mediaType: string; digest: string; size: number };
      layers: Array<{ mediaType: string; digest: string }>;
    };
    assert.equal(manifest.config.mediaType, 'application/vnd.sylabs.sif.config.v1+json');
    assert.equal(manifest.config.size, 2);
    const config = await fetch(`${shelf.url}/v2/admin/bridge/labels/blobs/${manifest.config.digest}`, { headers: auth });
    assert.equal(await config.text(), '{}');
    assert.equal(manifest.layers[0]!.mediaType, 'application/vnd.sylabs.sif.layer.v1.sif');
    const blobFile = path.join(shelf.dataDir, 'blobs/sha256', manifest.layers[0]!.digest.slice(7, 9), manifest.layers[0]!.digest.slice(7));
    assert.equal(sha256(await readFile(blobFile)), manifest.layers[0]!.digest.slice(7));
  });

  test('a 200 MiB SIF round trip through oras', async () => {
    const big = path.join(work, 'big.sif');
    await makeLargeSif(big, work, 200 * 2 ** 20);
    const push = await run(oras, [...creds, 'push', big, `${host(shelf)}/admin/oras/big:v1`], { timeoutMs: 300_000 });
    assert.equal(push.code, 0, push.stderr);
    const out = path.join(work, 'big-out.sif');
    const pull = await run(oras, ['pull', `${host(shelf)}/admin/oras/big:v1`, out], { timeoutMs: 300_000 });
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await fileSha(out), await fileSha(big));
    await rm(big);
    await rm(out);
  });

  test('skopeo copy --preserve-digests of a plain OCI image in and back: byte-identical manifest', async () => {
    const layout = path.join(work, 'layout');
    await mkdir(path.join(layout, 'blobs/sha256'), { recursive: true });
    const put = async (bytes: Buffer) => {
      const d = sha256(bytes);
      await writeFile(path.join(layout, 'blobs/sha256', d), bytes);
      return { digest: `sha256:${d}`, size: bytes.length };
    };
    await writeFile(path.join(work, 'hello.txt'), 'hello from skopeo\n');
    const tarFile = path.join(work, 'layer.tar');
    assert.equal((await run('tar', ['-C', work, '-cf', tarFile, 'hello.txt'])).code, 0);
    const layer = await put(await readFile(tarFile));
    const config = await put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: {} })));
    const manifestBytes = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
    }));
    const manifest = await put(manifestBytes);
    await writeFile(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(path.join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));

    const dest = `docker://${host(shelf)}/admin/skopeo/plain:v1`;
    const copy = await run('skopeo', ['--insecure-policy', 'copy', '--preserve-digests', '--dest-tls-verify=false', '--dest-creds', `admin:${ADMIN_TOKEN}`, `oci:${layout}:v1`, dest]);
    assert.equal(copy.code, 0, copy.stderr);
    const raw = await run('skopeo', ['--insecure-policy', 'inspect', '--tls-verify=false', '--raw', dest]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(raw.stdout, manifestBytes.toString());
    const back = path.join(work, 'back');
    const copyBack = await run('skopeo', ['--insecure-policy', 'copy', '--preserve-digests', '--src-tls-verify=false', dest, `oci:${back}:v1`]);
    assert.equal(copyBack.code, 0, copyBack.stderr);
    assert.deepEqual(await readFile(path.join(back, 'blobs/sha256', layer.digest.slice(7))), await readFile(tarFile));
    const tags = await run('skopeo', ['--insecure-policy', 'list-tags', '--tls-verify=false', `docker://${host(shelf)}/admin/skopeo/plain`]);
    assert.deepEqual((JSON.parse(tags.stdout) as { Tags: string[] }).Tags, ['v1']);
  });

  test('a chunked upload resumes after a dropped connection', async () => {
    const bytes = randomBytes(6 << 20);
    const auth = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` };
    const start = await fetch(`${shelf.url}/v2/admin/oras/resume/blobs/uploads/`, { method: 'POST', headers: auth });
    const location = `${shelf.url}${start.headers.get('location')}`;
    const first = await fetch(location, { method: 'PATCH', body: bytes.subarray(0, 2 << 20), headers: { ...auth, 'content-range': `0-${(2 << 20) - 1}`, 'content-type': 'application/octet-stream' } });
    assert.equal(first.status, 202);
    // Second chunk: the connection drops after 1 MiB of 4.
    await new Promise<void>((resolve) => {
      const req = http.request(location, { method: 'PATCH', headers: { ...auth, 'content-range': `${2 << 20}-${(6 << 20) - 1}`, 'content-length': 4 << 20 } });
      req.on('error', () => resolve());
      req.write(bytes.subarray(2 << 20, 3 << 20), () => setTimeout(() => { req.destroy(); resolve(); }, 200));
    });
    await new Promise((r) => setTimeout(r, 300));
    const status = await fetch(location, { headers: auth });
    assert.equal(status.status, 204);
    const [, end] = /^0-(\d+)$/.exec(status.headers.get('range')!)!;
    const resumeAt = Number(end) + 1;
    assert.equal(resumeAt, 2 << 20);
    const rest = await fetch(location, { method: 'PATCH', body: bytes.subarray(resumeAt), headers: { ...auth, 'content-range': `${resumeAt}-${bytes.length - 1}`, 'content-type': 'application/octet-stream' } });
    assert.equal(rest.status, 202);
    const done = await fetch(`${location}?digest=sha256:${sha256(bytes)}`, { method: 'PUT', headers: auth });
    assert.equal(done.status, 201);
    const back = Buffer.from(await (await fetch(`${shelf.url}/v2/admin/oras/resume/blobs/sha256:${sha256(bytes)}`, { headers: auth })).arrayBuffer());
    assert.equal(sha256(back), sha256(bytes));
  });
});

describe('real OCI client with Basic auth', { concurrency: false }, () => {
  let shelf: TestShelf;
  let work: string;
  before(async () => {
    shelf = await startShelf({ env: { SHELF_OCI_CHALLENGE: 'basic' } });
    work = await mkdtemp(path.join(tmpdir(), 'shelf-oci-basic-'));
  });
  after(async () => {
    await shelf?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('push and pull with username + API token as Basic credentials', async () => {
    const res = await fetch(`${shelf.url}/v2/admin/x/y/blobs/uploads/`, { method: 'POST' });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Basic realm="shelf"');
    const file = fixture('minimal-amd64.sif');
    const push = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'push', file, `${host(shelf)}/admin/basic/minimal:v1`]);
    assert.equal(push.code, 0, push.stderr);
    const out = path.join(work, 'basic.sif');
    const pull = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'pull', `${host(shelf)}/admin/basic/minimal:v1`, out]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await fileSha(out), await fileSha(file));
    const wrong = await run(oras, ['--user', 'admin', '--pass', 'wrong', 'push', file, `${host(shelf)}/admin/basic/minimal:v2`]);
    assert.notEqual(wrong.code, 0);
  });
});
