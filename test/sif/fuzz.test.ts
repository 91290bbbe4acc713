import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { BufferSource, KeyChain, SifError, StaticKeys, inspectSif, summarizeSif, verifySif } from '../../src/sif/index.js';
import { FIXTURES } from '../helpers/shelf.js';

const names = ['minimal-amd64.sif', 'apptainer-layout-amd64.sif', 'signed-pgp-rsa.sif', 'signed-dsse-ecdsa.sif', 'signed-pgp-two-signers.sif', 'upstream/one-group-signed-legacy-all.sif', 'upstream/one-object-sbom.sif'];
const fixtures = await Promise.all(names.map((n) => readFile(path.join(FIXTURES, n))));
const noKeys = new KeyChain([new StaticKeys([], [])]);

/** A byte change anywhere, a change in the header or descriptor table (where it matters most), a cut, or a bogus 64-bit field. */
const mutation = fc.record({
  fixture: fc.integer({ min: 0, max: fixtures.length - 1 }),
  edits: fc.array(
    fc.oneof(
      fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('meta' as const), at: fc.integer({ min: 0, max: 4096 + 585 * 6 }), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('int64' as const), at: fc.integer({ min: 0, max: 4096 + 585 * 6 }), value: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) }),
    ),
    { minLength: 1, maxLength: 6 },
  ),
  cut: fc.option(fc.nat(), { nil: undefined }),
});

type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function apply(m: Mutation): Buffer {
  let b = Buffer.from(fixtures[m.fixture]!);
  for (const e of m.edits) {
    if (e.kind === 'int64') {
      const at = Math.min(e.at, b.length - 8);
      if (at >= 0) b.writeBigInt64LE(e.value, at);
    } else {
      const at = e.kind === 'byte' ? e.at % b.length : Math.min(e.at, b.length - 1);
      b[at] = e.value;
    }
  }
  if (m.cut !== undefined) b = b.subarray(0, m.cut % (b.length + 1));
  return b;
}

test('mutated and truncated images give only typed SifErrors, quickly, in bounded memory', async () => {
  const heapBefore = process.memoryUsage().heapUsed;
  let failures = 0;
  await fc.assert(
    fc.asyncProperty(mutation, async (m) => {
      const bytes = apply(m);
      const started = performance.now();
      for (const run of [() => inspectSif(new BufferSource(bytes)), () => summarizeSif(new BufferSource(bytes)), () => verifySif(new BufferSource(bytes), noKeys)]) {
        try {
          await run();
        } catch (err) {
          if (!(err instanceof SifError)) throw new Error(`untyped error: ${(err as Error)?.stack ?? String(err)}`, { cause: err });
          failures++;
        }
      }
      assert.ok(performance.now() - started < 2000, 'one image took over 2 s');
    }),
    { numRuns: 3000, seed: 20261123 },
  );
  assert.ok(failures > 1000, `only ${failures} of the mutations were refused: the generator is too gentle`);
  assert.ok(process.memoryUsage().heapUsed - heapBefore < 256 * 2 ** 20, 'heap grew by more than 256 MiB');
});

test('hostile sizes are refused before anything big is allocated', async () => {
  const b = Buffer.from(fixtures[0]!);
  b.writeBigInt64LE(2n ** 40n, 88); // descriptors total
  await assert.rejects(inspectSif(new BufferSource(b)), (e: unknown) => e instanceof SifError && /descriptor count/.test(e.message));
  const c = Buffer.from(fixtures[0]!);
  c.writeBigInt64LE(2n ** 62n, 4096 + 25); // object size of descriptor 1
  await assert.rejects(inspectSif(new BufferSource(c)), (e: unknown) => e instanceof SifError && e.code === 'bad-descriptor' && /out of range/.test(e.message));
  const d = Buffer.from(fixtures[0]!);
  d.writeBigInt64LE(2n ** 50n, 4096 + 25);
  await assert.rejects(inspectSif(new BufferSource(d)), (e: unknown) => e instanceof SifError && e.code === 'bad-descriptor');
});
