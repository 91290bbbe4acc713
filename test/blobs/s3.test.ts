import assert from 'node:assert/strict';
import { ListObjectsV2Command, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { openBlobStore, parseBlobUrl } from '../../src/blobs/open.js';
import type { S3BlobStore } from '../../src/blobs/s3.js';
import { startSwift, type SwiftServer } from '../helpers/swift.js';
import { blobStoreSuite } from './driver-suite.js';

let swift: SwiftServer;
before(async () => {
  swift = await startSwift();
  Object.assign(process.env, swift.env);
});
after(() => swift?.stop());

blobStoreSuite('S3 (OpenStack Swift)', async () => {
  // 5 MiB pieces: every write of more than 5 MiB is stored in several pieces.
  const url = swift.blobsUrl({ bucket: 'driver', prefix: 'site/a', query: { 'part-size': '5MiB' } });
  const location = parseBlobUrl(url, '/unused');
  assert.equal(location.kind, 's3');
  const store = (await openBlobStore(location)) as S3BlobStore;
  const client = swift.client();
  return {
    store,
    async leftovers() {
      const objects = await client.send(new ListObjectsV2Command({ Bucket: 'driver', Prefix: 'site/a/uploads/' }));
      const mpus = await client.send(new ListMultipartUploadsCommand({ Bucket: 'driver' }));
      return (objects.KeyCount ?? 0) + (mpus.Uploads?.length ?? 0);
    },
    async cleanup() {
      store.close();
      client.destroy();
    },
  };
});

test('the bucket is created when missing, blobs live under the prefix, presigned GETs use the public endpoint', async () => {
  const publicEndpoint = swift.endpoint.replace('127.0.0.1', 'localhost');
  const store = (await openBlobStore(
    parseBlobUrl(swift.blobsUrl({ bucket: 'fresh-bucket', prefix: 'p', query: { 'public-endpoint': publicEndpoint } }), '/unused'),
  )) as S3BlobStore;
  const client = swift.client();
  try {
    const bytes = Buffer.from('presigned bytes');
    const { digest } = await store.ingest(Readable.from([bytes]), {});
    const listed = await client.send(new ListObjectsV2Command({ Bucket: 'fresh-bucket' }));
    assert.deepEqual(listed.Contents?.map((o) => o.Key), [`p/blobs/sha256/${digest.slice(7)}`]);
    const url = await store.presignGet(digest, { expiresIn: 60 });
    assert.equal(new URL(url).host, new URL(publicEndpoint).host);
    const res = await fetch(url, { headers: { range: 'bytes=0-8' } });
    assert.equal(res.status, 206);
    assert.equal(await res.text(), 'presigned');
    const tampered = url.replace(/X-Amz-Signature=[0-9a-f]/, 'X-Amz-Signature=Z');
    assert.equal((await fetch(tampered)).status, 403);
  } finally {
    store.close();
    client.destroy();
  }
});

test('bad blob URLs are clear errors', async () => {
  assert.throws(() => parseBlobUrl('ftp://x', '/d'), /unsupported scheme/);
  assert.throws(() => parseBlobUrl('s3://b?nope=1', '/d'), /unknown s3 option "nope"/);
  assert.throws(() => parseBlobUrl('s3://b?part-size=1MiB', '/d'), /at least 5MiB/);
  assert.deepEqual(parseBlobUrl(undefined, '/d'), { kind: 'file', root: '/d' });
  assert.deepEqual(parseBlobUrl('file:///srv/blobs', '/d'), { kind: 'file', root: '/srv/blobs' });
  await assert.rejects(
    openBlobStore(parseBlobUrl(swift.blobsUrl({ bucket: 'never-made', query: { 'create-bucket': 'false' } }), '/d')),
    /cannot use bucket never-made/,
  );
});
