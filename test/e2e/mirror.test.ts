import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shelfCli, type ShelfCli } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { pushOciSif } from '../helpers/oci-sif.js';
import { startCountingProxy, startForeignFront, type CountingProxy } from '../helpers/proxy.js';
import { run } from '../helpers/run.js';
import { makeLargeSif } from '../helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');
const RSA_FP = '5D60487627A589F3F579EF9D8802BDF6FAF76328';
const MiB = 2 ** 20;

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

interface Summary {
  containers: number;
  images: { copied: number; tagged: number; unchanged: number; failed: number };
  tagsSet: number;
  bytes: { downloaded: number; uploaded: number; resumed: number };
  keys: { copied: string[]; present: string[]; missing: string[] };
  outcomes: Array<{ dest: string; arch: string | null; tags: string[]; action: string; error?: string }>;
}

interface ContainerJson {
  description: string;
  archTags: Record<string, Record<string, string>>;
}

/**
 * `shelf mirror` between two real Shelf servers (and from Debian's docker-registry), with the
 * real Library client reading what landed: bytes, per-architecture tags, descriptions, keys.
 */
describe('shelf mirror', { concurrency: false }, () => {
  let source: TestShelf;
  let dest: TestShelf;
  let cli: ShelfCli;
  let work: string;
  const host = (s: TestShelf | CountingProxy) => new URL(s.url).host;
  const lib = (s: TestShelf, ...args: string[]) => run(libclient, ['--url', s.url, '--token', ADMIN_TOKEN, ...args]);
  const mirror = async (...args: string[]) => {
    const r = await cli.run(['mirror', '--token', ADMIN_TOKEN, '--source-token', ADMIN_TOKEN, ...args]);
    return { ...r, summary: r.stdout.trim().startsWith('{') ? (JSON.parse(r.stdout) as Summary) : null };
  };
  const container = async (s: TestShelf, p: string): Promise<ContainerJson | null> => {
    const res = await api(s)(`/v1/containers/${p}`);
    if (res.status === 404) return null;
    return ((await res.json()) as { data: ContainerJson }).data;
  };
  const push = async (s: TestShelf, file: string, ref: string, ...extra: string[]) => {
    const r = await lib(s, 'push', ...extra, file, ref);
    assert.equal(r.code, 0, r.stderr);
  };

  before(async () => {
    // One after the other: two servers starting at once on a loaded machine can miss the start timeout.
    source = await startShelf();
    dest = await startShelf();
    cli = await shelfCli();
    work = await mkdtemp(path.join(tmpdir(), 'shelf-mirror-'));
    // A multi-architecture, signed collection: app (amd64 and arm64 under the same tags, both
    // signed by the RSA key) and tool (unsigned), with descriptions.
    const arm = path.join(work, 'arm64-signed.sif');
    await copyFile(path.join(FIXTURES, 'minimal-arm64.sif'), arm);
    const signed = await cli.run(['sign', arm, '--key', path.join(FIXTURES, 'keys/pgp-rsa3072-PRIVATE-THROWAWAY.asc')]);
    assert.equal(signed.code, 0, signed.stderr);
    await push(source, path.join(FIXTURES, 'signed-pgp-rsa.sif'), 'admin/multi/app:v1', '--desc', 'the amd64 build');
    await push(source, arm, 'admin/multi/app:v1', '--desc', 'the arm64 build');
    for (const [arch, file] of [['amd64', path.join(FIXTURES, 'signed-pgp-rsa.sif')], ['arm64', arm]] as const) {
      const id = (await (await api(source)(`/v1/containers/admin/multi/app`)).json()) as { data: { id: string; archTags: Record<string, Record<string, string>> } };
      const res = await api(source)(`/v2/tags/${id.data.id}`, { method: 'POST', body: JSON.stringify({ Arch: arch, Tag: 'latest', ImageID: id.data.archTags[arch]!.v1 }) });
      assert.equal(res.status, 200, `${file}: ${await res.text()}`);
    }
    await push(source, path.join(FIXTURES, 'minimal-amd64.sif'), 'admin/multi/tool:1.0', '--desc', 'a small tool');
    const key = await cli.run(['key', 'push', path.join(FIXTURES, 'keys/pgp-rsa3072-public.asc'), '--keyserver', source.url, '--token', ADMIN_TOKEN]);
    assert.equal(key.code, 0, key.stderr);
  });
  after(async () => {
    await Promise.all([source?.stop(), dest?.stop()]);
    await rm(work, { recursive: true, force: true });
  });

  test('--dry-run says what it would copy and copies nothing', async () => {
    const r = await mirror('--dry-run', '--json', `library://${host(source)}/admin/multi`, `library://${host(dest)}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.summary!.containers, 2);
    assert.equal(r.summary!.images.copied, 3);
    assert.equal(r.summary!.tagsSet, 5);
    assert.deepEqual(r.summary!.keys.copied, [RSA_FP]);
    assert.equal(await container(dest, 'admin/multi/app'), null);
    const key = await fetch(`${dest.url}/pks/lookup?op=get&exact=on&search=0x${RSA_FP.toLowerCase()}`);
    assert.equal(key.status, 404);
  });

  test('a multi-arch signed collection arrives with its tags, descriptions, bytes and keys', async () => {
    const r = await cli.run(['mirror', '--token', ADMIN_TOKEN, '--source-token', ADMIN_TOKEN, '--jobs', '3', `library://${host(source)}/admin/multi`, `library://${host(dest)}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /images: 3 copied, 0 only re-tagged, 0 unchanged, 0 failed/);
    assert.match(r.stdout, /keys: 1 copied/);
    assert.match(r.stderr, /copied\s+admin\/multi\/app:latest,v1 \(arm64\)/);
    const app = (await container(dest, 'admin/multi/app'))!;
    const srcApp = (await container(source, 'admin/multi/app'))!;
    assert.deepEqual(Object.keys(app.archTags).sort(), ['amd64', 'arm64']);
    for (const arch of ['amd64', 'arm64']) assert.deepEqual(Object.keys(app.archTags[arch]!).sort(), ['latest', 'v1']);
    assert.deepEqual(Object.keys(srcApp.archTags).sort(), ['amd64', 'arm64']);
    const tool = (await container(dest, 'admin/multi/tool'))!;
    assert.deepEqual(tool.archTags, { amd64: { '1.0': tool.archTags.amd64!['1.0']! } });
    // The real client pulls every image from the copy: same bytes, same description.
    for (const [ref, arch, description] of [
      ['admin/multi/app:latest', 'amd64', 'the amd64 build'],
      ['admin/multi/app:v1', 'arm64', 'the arm64 build'],
      ['admin/multi/tool:1.0', 'amd64', 'a small tool'],
    ] as const) {
      const [a, b] = [path.join(work, `src-${arch}.sif`), path.join(work, `dst-${arch}.sif`)];
      for (const [s, file] of [[source, a], [dest, b]] as const) {
        await rm(file, { force: true });
        const pulled = await lib(s, 'pull', '--arch', arch, ref, file);
        assert.equal(pulled.code, 0, pulled.stderr);
      }
      assert.equal(await sha256(b), await sha256(a), ref);
      const image = JSON.parse((await lib(dest, 'image', ref, '--arch', arch)).stdout) as { description: string; fingerprints: string[] };
      assert.equal(image.description, description);
      // Signatures keep verifying, with the key the mirror brought into the destination's keyserver.
      if (ref.startsWith('admin/multi/app')) {
        assert.deepEqual(image.fingerprints, [RSA_FP]);
        const verified = await cli.run(['verify', b, '--keyserver', dest.url]);
        assert.equal(verified.code, 0, verified.stderr);
        assert.match(verified.stdout, new RegExp(`Fingerprint: ${RSA_FP}`));
      }
    }
  });

  test('from a Library server that is not Shelf: containers found through v1/search', async () => {
    // The source as a Sylabs-compatible library shows itself: another version, no /api/ (Shelf's browse calls).
    const front = await startForeignFront(source.url);
    try {
      const r = await mirror('--json', `library://${front.host}/admin/multi`, `library://${host(dest)}/sylabs-like/multi`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.summary!.images.failed, 0);
      assert.equal(r.summary!.images.copied + r.summary!.images.tagged, 3);
      // Found through search alone: the /api/ listing calls got nothing.
      assert.ok(front.seen.includes('/v1/search'), `listed through search: ${[...new Set(front.seen)].join(' ')}`);
      const app = (await container(dest, 'sylabs-like/multi/app'))!;
      assert.deepEqual(Object.keys(app.archTags).sort(), ['amd64', 'arm64']);
      assert.ok((await container(dest, 'sylabs-like/multi/tool'))!.archTags.amd64!['1.0']);
    } finally {
      await front.close();
    }
  });

  test('a rerun copies nothing; a tag moved at the source is all the next run changes', async () => {
    const again = await mirror('--json', `library://${host(source)}/admin/multi`, `library://${host(dest)}`);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(again.summary!.images, { copied: 0, tagged: 0, unchanged: 3, failed: 0 });
    assert.equal(again.summary!.tagsSet, 0);
    assert.deepEqual(again.summary!.bytes, { downloaded: 0, uploaded: 0, resumed: 0 });
    assert.deepEqual(again.summary!.keys, { copied: [], present: [RSA_FP], missing: [] });

    await push(source, path.join(FIXTURES, 'labels-object-amd64.sif'), 'admin/multi/tool:1.0');
    const moved = await mirror('--json', `library://${host(source)}/admin/multi/tool`, `library://${host(dest)}/admin/multi/tool`);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal(moved.summary!.images.copied, 1);
    assert.equal(moved.summary!.tagsSet, 1);
    const pulled = path.join(work, 'moved.sif');
    assert.equal((await lib(dest, 'pull', '--arch', 'amd64', 'admin/multi/tool:1.0', pulled)).code, 0);
    assert.equal(await sha256(pulled), await sha256(path.join(FIXTURES, 'labels-object-amd64.sif')));
  });

  test('one tag, to another name', async () => {
    const r = await mirror('--json', `library://${host(source)}/admin/multi/app:v1`, `library://${host(dest)}/admin/copies/app-v1`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.summary!.images.copied + r.summary!.images.tagged, 2);
    const k = (await container(dest, 'admin/copies/app-v1'))!;
    assert.deepEqual(Object.fromEntries(Object.entries(k.archTags).map(([a, t]) => [a, Object.keys(t)])), { amd64: ['v1'], arm64: ['v1'] });
  });

  test('server-side job: POST /api/admin/mirror runs in the server, its progress readable', async () => {
    const post = (body: unknown, token: string | null = ADMIN_TOKEN) => api(dest, token)('/api/admin/mirror', { method: 'POST', body: JSON.stringify(body) });
    const anonymous = await post({ source: `library://${host(source)}/admin/multi` }, null);
    assert.equal(anonymous.status, 401);
    assert.ok(((await anonymous.json()) as { error?: { message?: string } }).error?.message);
    const bad = await post({ source: 'ftp://example.org/x' });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /bad mirror location/);
    const depth = await post({ source: `library://${host(source)}/admin/multi`, destination: 'admin' });
    assert.equal(depth.status, 400);

    const started = await post({ source: `library://${host(source)}/admin/multi`, destination: 'admin/jobcopy', sourceToken: ADMIN_TOKEN, jobs: 2 });
    assert.equal(started.status, 202, await started.clone().text());
    const { data: job } = (await started.json()) as { data: { id: string; status: string } };
    assert.equal(job.status, 'running');
    type Job = { status: string; progress: { images: Summary['images']; keys: Summary['keys'] | null; recent: string[] }; error: string | null };
    let seen: Job | null = null;
    for (let i = 0; i < 300; i++) {
      const res = await api(dest)(`/api/admin/mirror/${job.id}`);
      assert.equal(res.status, 200);
      seen = ((await res.json()) as { data: Job }).data;
      if (seen.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(seen!.status, 'done', JSON.stringify(seen));
    assert.equal(seen!.progress.images.copied + seen!.progress.images.tagged, 3);
    assert.equal(seen!.progress.images.failed, 0);
    assert.deepEqual(seen!.progress.keys?.present, [RSA_FP]);
    assert.ok(seen!.progress.recent.some((l) => l.includes('admin/jobcopy/app')), seen!.progress.recent.join('\n'));
    const k = (await container(dest, 'admin/jobcopy/app'))!;
    assert.deepEqual(Object.keys(k.archTags).sort(), ['amd64', 'arm64']);
    const list = (await (await api(dest)('/api/admin/mirror')).json()) as { data: Array<{ id: string }> };
    assert.ok(list.data.some((j) => j.id === job.id));
    const missing = await api(dest)('/api/admin/mirror/no-such-job');
    assert.equal(missing.status, 404);
    // The job's own token ends with the job.
    const tokens = (await (await api(dest)('/api/users/admin/tokens')).json()) as { data: Array<{ name: string; revokedAt?: string | null }> };
    assert.ok(tokens.data.filter((t) => t.name === 'mirror job').every((t) => t.revokedAt), JSON.stringify(tokens.data));
  });

  test('exit codes: a missing source is 4, a bad location 2, an unreachable server 3', async () => {
    const missing = await mirror(`library://${host(source)}/nobody`, `library://${host(dest)}`);
    assert.equal(missing.code, 4, missing.stderr);
    assert.match(missing.stderr, /no entity nobody/);
    const bad = await mirror(`library://${host(source)}/admin/multi`, `library://${host(dest)}/just-one`);
    assert.equal(bad.code, 2, bad.stderr);
    const down = await mirror('library://127.0.0.1:9/admin/multi', `library://${host(dest)}`);
    assert.equal(down.code, 3, down.stderr);
  });

  test('killed midway, the next run fetches only what is missing', async () => {
    const big = path.join(work, 'big.sif');
    await makeLargeSif(big, work, 48 * MiB);
    await push(source, big, 'admin/big/blob:latest');
    const proxy = await startCountingProxy(source.url);
    try {
      const args = ['mirror', '--token', ADMIN_TOKEN, '--source-token', ADMIN_TOKEN, '--concurrency', '1', '--chunk-size', String(2 * MiB), `library://${host(proxy)}/admin/big`, `library://${host(dest)}`];
      const child = cli.spawn(args);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const outcome = await Promise.race([proxy.whenDown(20 * MiB).then(() => 'reached'), exited.then(() => 'exited')]);
      assert.equal(outcome, 'reached', stderr);
      child.kill('SIGKILL');
      await exited;
      assert.equal(await container(dest, 'admin/big/blob').then((k) => Object.keys(k?.archTags ?? {}).length), 0);

      proxy.reset();
      const resumed = await cli.run([...args.slice(0, 1), '--json', ...args.slice(1)]);
      assert.equal(resumed.code, 0, resumed.stderr);
      const summary = JSON.parse(resumed.stdout) as Summary;
      assert.equal(summary.images.copied, 1);
      assert.ok(summary.bytes.resumed >= 18 * MiB, `resumed from ${summary.bytes.resumed}`);
      // The second run fetched what was missing, not the whole image again.
      assert.ok(proxy.down < 48 * MiB - 16 * MiB, `second run fetched ${proxy.down} bytes`);
      const pulled = path.join(work, 'big-copy.sif');
      assert.equal((await lib(dest, 'pull', '--arch', 'amd64', 'admin/big/blob:latest', pulled)).code, 0);
      assert.equal(await sha256(pulled), await sha256(big));
    } finally {
      await proxy.close();
    }
  });

  test('from an OCI registry (oras://): every tag, the arch read from the SIF', async () => {
    const registry = await startDockerRegistry(path.join(work, 'registry'));
    try {
      for (const [file, tag] of [['minimal-arm64.sif', 'v1'], ['minimal-arm64.sif', 'latest'], ['signed-pgp-rsa.sif', 'amd']] as const) {
        const r = await cli.run(['push', path.join(FIXTURES, file), `oras://${registry.host}/site/images/hello:${tag}`]);
        assert.equal(r.code, 0, r.stderr);
      }
      const dry = await mirror('--json', '--dry-run', `oras://${registry.host}/site/images/hello`, `library://${host(dest)}/admin/oras/hello`);
      assert.equal(dry.code, 0, dry.stderr);
      assert.equal(dry.summary!.images.copied, 2);
      const r = await mirror('--json', '--source-keyserver', source.url, `oras://${registry.host}/site/images/hello`, `library://${host(dest)}/admin/oras/hello`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.summary!.images.copied, 2);
      assert.deepEqual(r.summary!.keys.present, [RSA_FP]);
      const k = (await container(dest, 'admin/oras/hello'))!;
      assert.deepEqual(Object.fromEntries(Object.entries(k.archTags).map(([a, t]) => [a, Object.keys(t).sort()])), { amd64: ['amd'], arm64: ['latest', 'v1'] });
      const again = await mirror('--json', `oras://${registry.host}/site/images/hello`, `library://${host(dest)}/admin/oras/hello`);
      assert.deepEqual(again.summary!.images, { copied: 0, tagged: 0, unchanged: 2, failed: 0 });
    } finally {
      await registry.stop();
    }
  });

  test('from docker://: an OCI-SIF image (squashfs layer) is copied as OCI, with the same digests', async () => {
    const registry = await startDockerRegistry(path.join(work, 'registry-ocisif'));
    try {
      const repo = 'site/ocisif/app';
      const { manifestDigest, layerDigest } = await pushOciSif(registry.host, repo, 'v1', work, 3 * MiB);

      const r = await mirror('--json', `docker://${registry.host}/${repo}:v1`, `library://${host(dest)}/admin/ocisif/app`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.summary!.images.copied, 1, r.stdout);
      const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', `admin:${ADMIN_TOKEN}`, `docker://${host(dest)}/admin/ocisif/app:v1`]);
      assert.equal(raw.code, 0, raw.stderr);
      assert.equal(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`, manifestDigest);
      const out = path.join(work, 'ocisif-dir');
      const copy = await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', '--src-creds', `admin:${ADMIN_TOKEN}`, `docker://${host(dest)}/admin/ocisif/app:v1`, `dir:${out}`]);
      assert.equal(copy.code, 0, copy.stderr);
      assert.ok((await readdir(out)).includes(layerDigest.slice(7)));
      const again = await mirror('--json', `docker://${registry.host}/${repo}`, `library://${host(dest)}/admin/ocisif/app`);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(again.summary!.images, { copied: 0, tagged: 0, unchanged: 1, failed: 0 });
    } finally {
      await registry.stop();
    }
  });
});
