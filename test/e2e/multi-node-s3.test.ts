import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, api, freshPostgres, startShelf, type TestShelf } from '../helpers/shelf.js';
import { makeLargeSif } from '../helpers/sif.js';
import { startSwift, type SwiftServer } from '../helpers/swift.js';

const libclient = path.join(CLIENTS, 'libclient');
const oras = path.join(CLIENTS, 'orasclient');
const creds = ['--user', 'admin', '--pass', ADMIN_TOKEN];
const CLUSTER_SECRET = 'multi-node-test-secret-0123456789abcdef';
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const fileSha = async (f: string) => sha256(await readFile(f));
const fixture = (name: string) => path.join(FIXTURES, name);
const host = (shelf: TestShelf) => new URL(shelf.url).host;
const MiB = 2 ** 20;

/**
 * Two Shelf processes over one PostgreSQL database and one Swift bucket, no shared memory:
 * uploads that move between nodes, pulls redirected to presigned URLs on the store's public
 * endpoint, tag races and quota races across the nodes.
 */
describe('two nodes over PostgreSQL and S3 (OpenStack Swift)', { concurrency: false }, () => {
  let swift: SwiftServer;
  let db: { url: string; drop: () => Promise<void> };
  let a: TestShelf;
  let b: TestShelf;
  let work: string;
  let publicEndpoint: string;

  before(async () => {
    swift = await startSwift();
    db = await freshPostgres();
    // Clients reach the store under another name than the servers do.
    publicEndpoint = swift.endpoint.replace('127.0.0.1', 'localhost');
    const env = {
      ...swift.env,
      SHELF_BLOBS: swift.blobsUrl({ bucket: 'shelf', prefix: 'cluster' }),
      SHELF_BLOBS_PUBLIC_ENDPOINT: publicEndpoint,
      SHELF_LIBRARY_MULTIPART_PART_SIZE: '16MiB',
      // Nodes share the key of download links and registry tokens (it is not in the database).
      SHELF_SECRET: CLUSTER_SECRET,
    };
    // One after the other: the first creates the schema and the admin.
    a = await startShelf({ dbUrl: db.url, env });
    b = await startShelf({ dbUrl: db.url, env });
    work = await mkdtemp(path.join(tmpdir(), 'shelf-nodes-'));
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await db?.drop();
    await swift?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('Library multipart push through A, pulls through B redirect to presigned URLs the real clients follow', async () => {
    const big = path.join(work, 'big.sif');
    await makeLargeSif(big, work, 70 * MiB);
    const push = await run(libclient, ['--url', a.url, '--token', ADMIN_TOKEN, '--trace', 'push', big, 'admin/nodes/big:latest'], { timeoutMs: 300_000 });
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stdout + push.stderr, /_multipart_complete/);

    const redirect = await api(b)('/v1/imagefile/admin/nodes/big:latest?arch=amd64', { redirect: 'manual' });
    assert.equal(redirect.status, 303);
    const location = new URL(redirect.headers.get('location')!);
    assert.equal(location.host, new URL(publicEndpoint).host);
    assert.match(location.search, /X-Amz-Signature=/);

    for (const args of [['--single'], ['--concurrency', '4', '--part-size', String(8 * MiB)]]) {
      const out = path.join(work, `big-${args[0]}.sif`);
      const pull = await run(libclient, ['--url', b.url, '--token', ADMIN_TOKEN, 'pull', 'admin/nodes/big:latest', out, '--arch', 'amd64', ...args], { timeoutMs: 300_000 });
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(await fileSha(out), await fileSha(big));
    }
    // The bridge made it an ORAS image too: oras-go pulls it through B, also redirected.
    const orasOut = path.join(work, 'big-oras.sif');
    const orasPull = await run(oras, [...creds, 'pull', `oras://${host(b)}/admin/nodes/big:latest`, orasOut], { timeoutMs: 300_000 });
    assert.equal(orasPull.code, 0, orasPull.stderr);
    assert.equal(await fileSha(orasOut), await fileSha(big));
  });

  test('an OCI chunked upload alternating between nodes completes on the other; both real clients pull it through B', async () => {
    const sif = path.join(work, 'chunked.sif');
    await makeLargeSif(sif, work, 17 * MiB);
    const bytes = await readFile(sif);
    const digest = sha256(bytes);
    const tokenRes = await api(a)('/v1/oci-redirect?namespace=admin/nodes/chunked&accessTypes=pull,push');
    assert.equal(tokenRes.status, 200);
    const { token } = (await tokenRes.json()) as { token: string };
    const auth = { authorization: `Bearer ${token}` };
    const post = await fetch(`${a.url}/v2/admin/nodes/chunked/blobs/uploads/`, { method: 'POST', headers: auth });
    assert.equal(post.status, 202);
    const location = post.headers.get('location')!;
    // Chunks under and over S3's 5 MiB part minimum, alternating A, B, A, B, …
    const sizes = [3 * MiB, 6 * MiB + 7, 1000, 5 * MiB, 2 * MiB];
    let at = 0;
    let i = 0;
    for (const size of sizes) {
      const node = i++ % 2 === 0 ? a : b;
      const chunk = bytes.subarray(at, Math.min(at + size, bytes.length - 10));
      const res = await fetch(`${node.url}${location}`, {
        method: 'PATCH',
        body: chunk,
        headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `${at}-${at + chunk.length - 1}` },
      });
      assert.equal(res.status, 202, await res.text());
      at += chunk.length;
      assert.equal(res.headers.get('range'), `0-${at - 1}`);
    }
    // A chunk that does not continue where the upload is gets 416 on either node.
    const gap = await fetch(`${a.url}${location}`, { method: 'PATCH', body: 'x', headers: { ...auth, 'content-range': `${at + 1}-${at + 1}` } });
    assert.equal(gap.status, 416);
    // The rest with the closing PUT on the node that did not take the last chunk.
    const closer = i % 2 === 0 ? a : b;
    const put = await fetch(`${closer.url}${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, {
      method: 'PUT',
      body: bytes.subarray(at),
      headers: { ...auth, 'content-type': 'application/octet-stream' },
    });
    assert.equal(put.status, 201, await put.text());
    const config = Buffer.from('{}');
    const cpost = await fetch(`${b.url}/v2/admin/nodes/chunked/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', body: config, headers: auth });
    assert.equal(cpost.status, 201);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.sylabs.sif.config.v1+json', digest: sha256(config), size: 2 },
        layers: [{ mediaType: 'application/vnd.sylabs.sif.layer.v1.sif', digest, size: bytes.length, annotations: { 'org.opencontainers.image.title': 'chunked.sif' } }],
      }),
    );
    const mput = await fetch(`${a.url}/v2/admin/nodes/chunked/manifests/latest`, {
      method: 'PUT',
      body: manifest,
      headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(mput.status, 201, await mput.text());

    const blob = await fetch(`${b.url}/v2/admin/nodes/chunked/blobs/${digest}`, { headers: auth, redirect: 'manual' });
    assert.equal(blob.status, 307);
    assert.equal(new URL(blob.headers.get('location')!).host, new URL(publicEndpoint).host);
    const ranged = await fetch(blob.headers.get('location')!, { headers: { range: 'bytes=100-199' } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), bytes.subarray(100, 200));

    const viaOras = path.join(work, 'chunked-oras.sif');
    const orasPull = await run(oras, [...creds, 'pull', `oras://${host(b)}/admin/nodes/chunked:latest`, viaOras], { timeoutMs: 300_000 });
    assert.equal(orasPull.code, 0, orasPull.stderr);
    assert.equal(await fileSha(viaOras), digest);
    const viaLib = path.join(work, 'chunked-lib.sif');
    const libPull = await run(libclient, ['--url', b.url, '--token', ADMIN_TOKEN, 'pull', 'admin/nodes/chunked:latest', viaLib, '--arch', 'amd64']);
    assert.equal(libPull.code, 0, libPull.stderr);
    assert.equal(await fileSha(viaLib), digest);
  });

  test('Library multipart parts spread over both nodes; a part re-sent through the other node is what gets verified', async () => {
    const sif = path.join(work, 'parts.sif');
    await makeLargeSif(sif, work, 40 * MiB);
    const good = await readFile(sif);
    const seed = await run(libclient, ['--url', a.url, '--token', ADMIN_TOKEN, 'push', fixture('minimal-amd64.sif'), 'admin/nodes/parts:seed']);
    assert.equal(seed.code, 0, seed.stderr);
    const containerId = ((await (await api(a)('/v1/containers/admin/nodes/parts')).json()) as { data: { id: string } }).data.id;
    const created = await api(b)('/v1/images', { method: 'POST', body: JSON.stringify({ container: containerId, hash: sha256(good).replace(':', '.') }) });
    assert.equal(created.status, 200);
    const imageId = ((await created.json()) as { data: { id: string } }).data.id;
    const json = async (node: TestShelf, p: string, body: unknown) => {
      const res = await api(node)(p, { method: 'PUT', body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as { data: Record<string, unknown>; error?: { message: string } } };
    };
    const start = async (node: TestShelf) => {
      const res = await api(node)(`/v2/imagefile/${imageId}/_multipart`, { method: 'POST', body: JSON.stringify({ filesize: good.length }) });
      assert.equal(res.status, 200);
      return ((await res.json()) as { data: { uploadID: string; partSize: number; totalParts: number } }).data;
    };
    // Announce on one node, send the bytes to the other.
    const sendPart = async (uploadId: string, n: number, partSize: number, bytes: Buffer, announceOn: TestShelf, sendTo: TestShelf) => {
      const part = bytes.subarray((n - 1) * partSize, n * partSize);
      const ann = await json(announceOn, `/v2/imagefile/${imageId}/_multipart`, { uploadID: uploadId, partNumber: n, partSize: part.length, sha256sum: '' });
      assert.equal(ann.status, 200, JSON.stringify(ann.body));
      const url = new URL(ann.body.data.presignedURL as string);
      const put = await fetch(`${sendTo.url}${url.pathname}`, { method: 'PUT', body: part });
      assert.equal(put.status, 200, await put.text());
      return put.headers.get('etag')!.replace(/"/g, '');
    };
    const complete = (node: TestShelf, uploadId: string, tokens: string[]) =>
      json(node, `/v2/imagefile/${imageId}/_multipart_complete`, { uploadID: uploadId, completedParts: tokens.map((token, i) => ({ partNumber: i + 1, token })) });

    // Parts 1 and 2 reach A in order (A hashes them as they come); part 1 is then sent again
    // through B with other bytes. A must not finish from what it hashed before.
    const first = await start(a);
    assert.equal(first.totalParts, 3);
    const bad = Buffer.from(good);
    bad[10 * MiB] = bad[10 * MiB]! ^ 0xff;
    const tokens = [
      await sendPart(first.uploadID, 1, first.partSize, good, a, a),
      await sendPart(first.uploadID, 2, first.partSize, good, a, a),
    ];
    tokens[0] = await sendPart(first.uploadID, 1, first.partSize, bad, b, b);
    tokens.push(await sendPart(first.uploadID, 3, first.partSize, good, b, b));
    const refused = await complete(a, first.uploadID, tokens);
    assert.equal(refused.status, 422, JSON.stringify(refused.body));
    assert.match(refused.body.error!.message, /does not match/);

    // The same upload done right, every step on alternating nodes.
    const second = await start(b);
    const ok = [
      await sendPart(second.uploadID, 1, second.partSize, good, b, a),
      await sendPart(second.uploadID, 2, second.partSize, good, a, b),
      await sendPart(second.uploadID, 3, second.partSize, good, b, a),
    ];
    const done = await complete(b, second.uploadID, ok);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    const tag = await api(a)(`/v1/tags/${containerId}`, { method: 'POST', body: JSON.stringify({ Tag: 'latest', ImageID: imageId }) });
    assert.equal(tag.status, 200);
    const out = path.join(work, 'parts-pulled.sif');
    const pull = await run(libclient, ['--url', a.url, '--token', ADMIN_TOKEN, 'pull', 'admin/nodes/parts:latest', out, '--arch', 'amd64']);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await fileSha(out), sha256(good));
  });

  test('a node with redirects off serves the bytes from the store itself, ranges included', async () => {
    const c = await startShelf({
      dbUrl: db.url,
      env: { ...swift.env, SHELF_BLOBS: swift.blobsUrl({ bucket: 'shelf', prefix: 'cluster' }), SHELF_BLOBS_REDIRECT: 'false', SHELF_SECRET: CLUSTER_SECRET },
    });
    try {
      const chunked = await fileSha(path.join(work, 'chunked-oras.sif'));
      const lib = await api(c)('/v1/imagefile/admin/nodes/chunked:latest?arch=amd64', { redirect: 'manual' });
      assert.equal(lib.status, 303);
      assert.equal(new URL(lib.headers.get('location')!).host, host(c));
      const ranged = await fetch(lib.headers.get('location')!, { headers: { range: 'bytes=0-3' } });
      assert.equal(ranged.status, 206);
      assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), (await readFile(path.join(work, 'chunked-oras.sif'))).subarray(0, 4));
      const blob = await api(c)(`/v2/admin/nodes/chunked/blobs/${chunked}`, { redirect: 'manual' });
      assert.equal(blob.status, 200);
      assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), chunked);
      const out = path.join(work, 'chunked-proxied.sif');
      const pull = await run(libclient, ['--url', c.url, '--token', ADMIN_TOKEN, 'pull', 'admin/nodes/chunked:latest', out, '--arch', 'amd64']);
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(await fileSha(out), chunked);
    } finally {
      await c.stop();
    }
  });

  test('concurrent pushes of one tag through both nodes (Library and ORAS) end consistent', async () => {
    const files = [fixture('minimal-amd64.sif'), fixture('apptainer-layout-amd64.sif')];
    const digests = await Promise.all(files.map(fileSha));
    // The container exists first: two first pushes racing to create it make one fail with 409.
    const warm = await run(libclient, ['--url', a.url, '--token', ADMIN_TOKEN, 'push', files[0]!, 'admin/nodes/race:warm']);
    assert.equal(warm.code, 0, warm.stderr);
    for (let round = 0; round < 3; round++) {
      const [first, second] = round % 2 === 0 ? files : [...files].reverse();
      const results = await Promise.all([
        run(libclient, ['--url', a.url, '--token', ADMIN_TOKEN, 'push', first!, 'admin/nodes/race:latest']),
        run(oras, [...creds, 'push', second!, `oras://${host(b)}/admin/nodes/race:latest`]),
        run(libclient, ['--url', b.url, '--token', ADMIN_TOKEN, 'push', second!, 'admin/nodes/race:latest']),
      ]);
      for (const r of results) assert.equal(r.code, 0, r.stderr);

      // Library view, from both nodes: one image under the tag.
      const seen = new Set<string>();
      for (const node of [a, b]) {
        const res = await api(node)('/v1/images/admin/nodes/race:latest?arch=amd64');
        assert.equal(res.status, 200);
        const { data } = (await res.json()) as { data: { hash: string } };
        seen.add(data.hash.replace('sha256.', 'sha256:'));
      }
      assert.equal(seen.size, 1);
      const libraryDigest = [...seen][0]!;
      assert.ok(digests.includes(libraryDigest));
      // OCI view, from both nodes: the same SIF under the same tag.
      for (const node of [a, b]) {
        const d = await run(oras, ['digest', `${host(node)}/admin/nodes/race:latest`]);
        assert.equal(d.code, 0, d.stderr);
        assert.equal(d.stdout.trim(), libraryDigest, `round ${round}: OCI tag and Library tag disagree`);
      }
      const out = path.join(work, `race-${round}.sif`);
      const pull = await run(oras, ['pull', `oras://${host(a)}/admin/nodes/race:latest`, out]);
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(await fileSha(out), libraryDigest);
    }
  });

  test('a quota holds across nodes: of two concurrent pushes that together exceed it, exactly one wins', async () => {
    const usage = async () => {
      const res = await api(a)('/v1/entities/admin');
      return ((await res.json()) as { data: { size: number; quota: number } }).data;
    };
    const files = [path.join(work, 'q1.sif'), path.join(work, 'q2.sif')];
    await makeLargeSif(files[0]!, work, 3 * MiB);
    await makeLargeSif(files[1]!, work, 3 * MiB);
    const used = (await usage()).size;
    assert.ok(used > 0);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      // Room for one more 3 MiB image, not two.
      await client.query(`update entities set quota = $1 where name = 'admin'`, [used + 4 * MiB]);
    } finally {
      await client.end();
    }
    for (let round = 0; round < 2; round++) {
      if (round === 1) {
        // Second round through OCI, the bytes of the first winner freed first.
        const client2 = new pg.Client({ connectionString: db.url });
        await client2.connect();
        await client2.query(`update entities set quota = $1 where name = 'admin'`, [(await usage()).size + 4 * MiB]);
        await client2.end();
      }
      const [x, y] = round === 0 ? files : [path.join(work, 'q3.sif'), path.join(work, 'q4.sif')];
      if (round === 1) {
        await makeLargeSif(x!, work, 3 * MiB);
        await makeLargeSif(y!, work, 3 * MiB);
      }
      const results =
        round === 0
          ? await Promise.all([
              run(libclient, ['--url', a.url, '--token', ADMIN_TOKEN, 'push', x!, 'admin/quota-one/one:latest']),
              run(libclient, ['--url', b.url, '--token', ADMIN_TOKEN, 'push', y!, 'admin/quota-two/two:latest']),
            ])
          : await Promise.all([
              run(oras, [...creds, 'push', x!, `oras://${host(a)}/admin/quota-three/three:latest`]),
              run(oras, [...creds, 'push', y!, `oras://${host(b)}/admin/quota-four/four:latest`]),
            ]);
      const won = results.filter((r) => r.code === 0);
      assert.equal(won.length, 1, results.map((r) => r.stderr).join('\n'));
      const lost = results.find((r) => r.code !== 0)!;
      // The Library client prints the 507 (at the upload's start once the winner's upload is in
      // progress, at completion otherwise), oras-go the 403 DENIED the OCI side answers for quota.
      assert.match(lost.stderr + lost.stdout, round === 0 ? /\b507\b/ : /403 Forbidden/);
      const names = round === 0 ? ['one', 'two'] : ['three', 'four'];
      const present = await Promise.all(names.map(async (n) => (await api(b)(`/v1/images/admin/quota-${n}/${n}:latest?arch=amd64`)).status));
      assert.deepEqual(present.filter((s) => s === 200).length, 1, `images present: ${present.join(',')}`);
      const after = await usage();
      assert.ok(after.size <= after.quota, `usage ${after.size} over quota ${after.quota}`);
    }
  });
});
