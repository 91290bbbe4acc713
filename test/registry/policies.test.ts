import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RegistryError } from '../../src/registry/errors.js';
import { parseDurationText, parsePolicy, tagMatches } from '../../src/registry/namespaces/policies.js';

describe('tag policies: patterns, durations, input', () => {
  test('* and ? are wildcards; latest only when named; other characters are literal', () => {
    assert.equal(tagMatches(['*'], 'v1.0'), true);
    assert.equal(tagMatches(['*'], 'latest'), false, 'a wildcard spares latest');
    assert.equal(tagMatches(['latest'], 'latest'), true);
    assert.equal(tagMatches(['v*'], 'v2'), true);
    assert.equal(tagMatches(['v*'], 'nightly'), false);
    assert.equal(tagMatches(['1.?'], '1.5'), true);
    assert.equal(tagMatches(['1.?'], '1x5'), false, 'a dot is a dot');
    assert.equal(tagMatches(['1.?'], '1.50'), false, 'the whole tag matches');
    assert.equal(tagMatches([], 'v1'), false);
  });

  test('durations: seconds or a number with s, m, h, d, w', () => {
    assert.equal(parseDurationText(90), 90);
    assert.equal(parseDurationText('30d'), 30 * 86400);
    assert.equal(parseDurationText('12h'), 43200);
    assert.equal(parseDurationText('2w'), 14 * 86400);
    assert.equal(parseDurationText('45'), 45);
    for (const bad of ['soon', '-1', '1y', 1.5, -3, null]) assert.throws(() => parseDurationText(bad), RegistryError, String(bad));
  });

  test('a policy from its input: true means every tag, strings split on commas, fields left out unset', () => {
    assert.deepEqual(parsePolicy({ immutableTags: true }), { immutableTags: ['*'], keepNewest: null, dropUntaggedAfter: null, keepSigned: false });
    assert.deepEqual(parsePolicy({ immutableTags: 'v*, stable,,v*', keepNewest: '3', dropUntaggedAfter: '1d', keepSigned: true }), {
      immutableTags: ['v*', 'stable'],
      keepNewest: 3,
      dropUntaggedAfter: 86400,
      keepSigned: true,
    });
    assert.deepEqual(parsePolicy({ immutableTags: false }).immutableTags, []);
    for (const bad of [{ keepNewest: 0 }, { keepNewest: 2.5 }, { keepSigned: 'yes' }, { immutableTags: [1] }, { immutableTags: ['a/b'] }, { immutableTags: 7 }]) {
      assert.throws(() => parsePolicy(bad), RegistryError, JSON.stringify(bad));
    }
  });
});
