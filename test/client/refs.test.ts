import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError } from '../../src/client/errors.js';
import { parseRef, registryBaseUrl } from '../../src/client/refs.js';
import { parseChallenge } from '../../src/client/registry-auth.js';

test('library references: entity/collection/container, optional host, tag lists, latest by default', () => {
  assert.deepEqual(parseRef('library://alice/tools/grep'), { kind: 'library', host: null, entity: 'alice', collection: 'tools', container: 'grep', tags: ['latest'] });
  assert.deepEqual(parseRef('library://shelf.example:8443/alice/tools/grep:v1,stable'), {
    kind: 'library',
    host: 'shelf.example:8443',
    entity: 'alice',
    collection: 'tools',
    container: 'grep',
    tags: ['v1', 'stable'],
  });
  const hash = `sha256.${'a'.repeat(64)}`;
  assert.deepEqual((parseRef(`library:alice/tools/grep:${hash}`) as { tags: string[] }).tags, [hash]);
});

test('short library references map as the server does: a missing entity or collection is default', () => {
  const short = (text: string) => {
    const r = parseRef(text) as { host: string | null; entity: string; collection: string; container: string; tags: string[] };
    return [r.host, `${r.entity}/${r.collection}/${r.container}`, r.tags.join(',')];
  };
  assert.deepEqual(short('library://alpine'), [null, 'default/default/alpine', 'latest']);
  assert.deepEqual(short('library://alpine:3.20'), [null, 'default/default/alpine', '3.20']);
  assert.deepEqual(short('library://tools/grep:1.0'), [null, 'default/tools/grep', '1.0']);
  assert.deepEqual(short('library:///alice/tools/grep'), [null, 'alice/tools/grep', 'latest']);
  assert.deepEqual(short('library:alpine'), [null, 'default/default/alpine', 'latest']);
});

test('oras references: host with port, nested repositories, tag or digest', () => {
  assert.deepEqual(parseRef('oras://127.0.0.1:5000/a/b/c:v1'), { kind: 'oras', host: '127.0.0.1:5000', repository: 'a/b/c', tag: 'v1', digest: null });
  assert.deepEqual(parseRef('oras://reg.example/x'), { kind: 'oras', host: 'reg.example', repository: 'x', tag: 'latest', digest: null });
  const d = `sha256:${'0'.repeat(64)}`;
  assert.deepEqual(parseRef(`oras://reg.example/x@${d}`), { kind: 'oras', host: 'reg.example', repository: 'x', tag: null, digest: d });
});

test('bad references are usage errors that say why', () => {
  const cases: Array<[string, RegExp]> = [
    ['docker://alpine', /must start with library:\/\/ or oras:\/\//],
    ['library://a//b', /expected library:\/\/\[entity\/\[collection\/\]\]container/],
    ['library://a/b/c/d/e', /expected library:\/\/\[entity/],
    ['library://a/b/c:', /"" is not a valid tag/],
    ['library://a/b/-c', /"-c" is not a valid name/],
    ['oras://host-only', /expected oras:\/\/HOST/],
    ['oras://reg/UPPER', /not a valid repository name/],
    ['oras://reg/x@sha256:12', /not a sha256 digest/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => parseRef(text), (err: unknown) => err instanceof ClientError && err.kind === 'usage' && pattern.test(err.message), text);
  }
});

test('loopback registries are plain HTTP, others HTTPS', () => {
  assert.equal(registryBaseUrl('127.0.0.1:5000'), 'http://127.0.0.1:5000');
  assert.equal(registryBaseUrl('localhost'), 'http://localhost');
  assert.equal(registryBaseUrl('[::1]:5000'), 'http://[::1]:5000');
  assert.equal(registryBaseUrl('reg.example'), 'https://reg.example');
});

test('WWW-Authenticate challenges: Bearer parameters (quoted, escaped, several scopes) and Basic', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push repository:c:pull"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.example/token', service: 'reg.example', scope: 'repository:a/b:pull,push repository:c:pull' },
  });
  assert.deepEqual(parseChallenge('Basic realm="test \\"registry\\""'), { scheme: 'basic', params: { realm: 'test "registry"' } });
  assert.equal(parseChallenge('Negotiate abc'), null);
  assert.equal(parseChallenge(null), null);
});
