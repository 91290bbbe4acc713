import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RegistryError } from '../../src/registry/errors.js';
import { checkName, checkTag, parseAnySha256, parseLibraryRef } from '../../src/registry/namespaces/names.js';

const HEX = 'ab'.repeat(32);

test('library refs of one to three segments; missing segments are "default"', () => {
  assert.deepEqual(parseLibraryRef('e/c/k:v1'), { entity: 'e', collection: 'c', container: 'k', tag: 'v1', digest: null });
  assert.deepEqual(parseLibraryRef('c/k:v1'), { entity: 'default', collection: 'c', container: 'k', tag: 'v1', digest: null });
  assert.deepEqual(parseLibraryRef('k'), { entity: 'default', collection: 'default', container: 'k', tag: 'latest', digest: null });
  assert.deepEqual(parseLibraryRef('/c/k:latest'), { entity: 'default', collection: 'c', container: 'k', tag: 'latest', digest: null });
  assert.deepEqual(parseLibraryRef(`e/c/k:sha256.${HEX}`), { entity: 'e', collection: 'c', container: 'k', tag: null, digest: `sha256:${HEX}` });
});

test('invalid refs and names are refused with a reason', () => {
  for (const ref of ['a/b/c/d:x', 'e/c/:x', 'e/../k:x', 'E/c/k:x', 'e/c/k:', 'e/c/k:.hidden', 'e/c/k:-x', 'e/c/k:a\u0000b']) {
    assert.throws(() => parseLibraryRef(ref), (e: unknown) => e instanceof RegistryError && e.kind === 'invalid', ref);
  }
  for (const name of ['', '..', 'x'.repeat(129), 'a b', 'a\nb', 'Upper', '-a', 'a-', 'a..b']) {
    assert.throws(() => checkName('entity', name), RegistryError, JSON.stringify(name));
  }
  for (const name of ['a', 'a.b', 'my-user', 'x_1', 'x'.repeat(128)]) assert.equal(checkName('entity', name), name);
  assert.throws(() => checkTag(`sha256.${HEX}`), RegistryError);
  assert.equal(checkTag('3.11.5'), '3.11.5');
});

test('image hashes in every form clients send', () => {
  assert.equal(parseAnySha256(`sha256.${HEX}`), `sha256:${HEX}`);
  assert.equal(parseAnySha256(`sha256:${HEX}`), `sha256:${HEX}`);
  assert.equal(parseAnySha256(HEX.toUpperCase()), `sha256:${HEX}`);
  assert.equal(parseAnySha256('sha256.abc'), null);
  assert.equal(parseAnySha256(`md5.${HEX}`), null);
});
