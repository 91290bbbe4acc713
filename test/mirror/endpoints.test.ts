import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientError } from '../../src/client/errors.js';
import { upstreamFor } from '../../src/cache/pull-through.js';
import { destinationPath, parseMirrorEnd, type LibraryEnd } from '../../src/mirror/endpoints.js';

const usage = (fn: () => unknown) => assert.throws(fn, (err: unknown) => err instanceof ClientError && err.kind === 'usage');

describe('mirror locations', () => {
  test('library:// names a host and 1 to 3 levels, a tag only after a container', () => {
    assert.deepEqual(parseMirrorEnd('library://lib.example.org:8443/alice/tools/gcc:13'), { kind: 'library', host: 'lib.example.org:8443', path: ['alice', 'tools', 'gcc'], tag: '13' });
    assert.deepEqual(parseMirrorEnd('library://127.0.0.1:9/alice/'), { kind: 'library', host: '127.0.0.1:9', path: ['alice'], tag: null });
    assert.deepEqual(parseMirrorEnd('library://[::1]:80'), { kind: 'library', host: '[::1]:80', path: [], tag: null });
    usage(() => parseMirrorEnd('library://h/a/b:v1'));
    usage(() => parseMirrorEnd('library://h/a/b/c/d'));
    usage(() => parseMirrorEnd('library://h/Alice'));
    usage(() => parseMirrorEnd('ftp://h/a'));
  });

  test('oras:// and docker:// name a repository and maybe a tag', () => {
    assert.deepEqual(parseMirrorEnd('oras://ghcr.io/site/images/hello:v1'), { kind: 'oras', host: 'ghcr.io', repository: 'site/images/hello', tag: 'v1' });
    assert.deepEqual(parseMirrorEnd('docker://localhost:5000/a/b'), { kind: 'docker', host: 'localhost:5000', repository: 'a/b', tag: null });
    usage(() => parseMirrorEnd('oras://ghcr.io/Bad'));
  });

  test('the destination replaces as many leading names as the source names', () => {
    const dest = (text: string) => parseMirrorEnd(text) as LibraryEnd;
    const src = parseMirrorEnd('library://a/alice/tools');
    assert.deepEqual(destinationPath(src, dest('library://b'), ['alice', 'tools', 'gcc']), ['alice', 'tools', 'gcc']);
    assert.deepEqual(destinationPath(src, dest('library://b/lab/kit'), ['alice', 'tools', 'gcc']), ['lab', 'kit', 'gcc']);
    usage(() => destinationPath(src, dest('library://b/lab'), ['alice', 'tools', 'gcc']));
    const oras = parseMirrorEnd('oras://r/x/y');
    assert.deepEqual(destinationPath(oras, dest('library://b/e/c/k'), ['e', 'c', 'k']), ['e', 'c', 'k']);
    usage(() => destinationPath(oras, dest('library://b/e'), ['e', 'c', 'k']));
  });

  test('a cached namespace maps to the upstream path after its prefix', () => {
    const upstreams = [
      { namespace: 'hub/', url: 'oras://registry-1.example.org/library', ttl: 60 },
      { namespace: 'mirror/sylabs/', url: 'library://cloud.example.org/', ttl: 60 },
    ];
    assert.equal(upstreamFor(upstreams, { entity: 'hub', collection: 'tools', container: 'gcc' }, 'v1')?.source, 'oras://registry-1.example.org/library/tools/gcc:v1');
    assert.equal(upstreamFor(upstreams, { entity: 'mirror', collection: 'sylabs', container: 'alpine' }, 'latest')?.source, 'library://cloud.example.org/alpine:latest');
    assert.equal(upstreamFor(upstreams, { entity: 'mirror', collection: 'other', container: 'alpine' }, 'latest'), null);
    assert.equal(upstreamFor(upstreams, { entity: 'admin', collection: 'tools', container: 'gcc' }, 'v1'), null);
  });
});
