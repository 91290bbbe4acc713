import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { BufferSource, KeyChain, SifError, StaticKeys, inspectSif, keysFromFile, summarizeSif, verifySif, type KeyProvider } from '../../src/sif/index.js';
import { FIXTURES } from '../helpers/shelf.js';

const names = [
  'minimal-amd64.sif',
  'apptainer-layout-amd64.sif',
  'signed-pgp-rsa.sif',
  'signed-dsse-ecdsa.sif',
  'signed-pgp-two-signers.sif',
  'upstream/one-group-signed-dsse.sif',
  'upstream/one-group-signed-legacy-all.sif',
  'upstream/one-object-sbom.sif',
];
const fixtures = await Promise.all(names.map((n) => readFile(path.join(FIXTURES, n))));
const noKeys = new KeyChain([new StaticKeys([], [])]);
/** The real keys, so that mutated signatures reach the crypto code. */
const allKeys = new KeyChain(
  await Promise.all(
    ['keys/pgp-rsa3072-public.asc', 'keys/pgp-ed25519-public.asc', 'keys/dsse-ecdsa-p256-public.pem', 'upstream/keys/pgp-public.asc', 'upstream/keys/ed25519-public.pem', 'upstream/keys/rsa-public.pem'].map((k) =>
      keysFromFile(path.join(FIXTURES, k)),
    ),
  ),
);
const PER_CASE_MS = 5000;

/** Mutations: a byte anywhere; a byte or a bogus int64 in the header or descriptor table; a byte in the data (squashfs, signatures); a cut. */
const mutation = fc.record({
  fixture: fc.integer({ min: 0, max: fixtures.length - 1 }),
  edits: fc.array(
    fc.oneof(
      fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('meta' as const), at: fc.integer({ min: 0, max: 4096 + 585 * 6 }), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('int64' as const), at: fc.integer({ min: 0, max: 4096 + 585 * 6 }), value: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) }),
      fc.record({ kind: fc.constant('data' as const), at: fc.integer({ min: 32176, max: 46000 }), value: fc.integer({ min: 0, max: 255 }) }),
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

function withinTime<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${PER_CASE_MS} ms`)), PER_CASE_MS);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

test('mutated and truncated images give only typed SifErrors, in bounded time and memory', async () => {
  const heapBefore = process.memoryUsage().heapUsed;
  let refused = 0;
  const runs: Array<(b: Buffer) => Promise<unknown>> = [
    (b) => summarizeSif(new BufferSource(b)),
    (b) => inspectSif(new BufferSource(b), { squashfsLabels: true }),
    (b) => verifySif(new BufferSource(b), noKeys),
    (b) => verifySif(new BufferSource(b), allKeys as KeyProvider),
  ];
  await fc.assert(
    fc.asyncProperty(mutation, async (m) => {
      const bytes = apply(m);
      for (const run of runs) {
        try {
          await withinTime(run(bytes));
        } catch (err) {
          if (!(err instanceof SifError)) throw new Error(`not a SifError: ${(err as Error)?.stack ?? String(err)}`, { cause: err });
          refused++;
        }
      }
    }),
    { numRuns: 3000, seed: 20261123 },
  );
  assert.ok(refused > 1000, `only ${refused} of the mutations were refused: the generator is too gentle`);
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

test('objects sharing bytes are refused (thousands of descriptors over one object would multiply the work)', async () => {
  const b = Buffer.from(fixtures[2]!); // signed-pgp-rsa: signature object 4 in slot 3
  b.writeBigInt64LE(32176n, 4096 + 3 * 585 + 17); // the signature now starts on the deffile
  await assert.rejects(summarizeSif(new BufferSource(b)), (e: unknown) => e instanceof SifError && e.message === 'objects 1 and 4 overlap');
});

test('a table of 4096 signatures is summarized and verified in bounded time', async () => {
  // signed-pgp-rsa's signature copied into 4092 more slots, each pointing at its own copy.
  const base = fixtures[2]!;
  const total = 4096;
  const sigOffset = 40960;
  const sigSize = base.length - sigOffset;
  const tableEnd = 4096 + total * 585;
  const dataStart = Math.ceil(tableEnd / 4096) * 4096;
  const shift = dataStart - 32176;
  const out = Buffer.alloc(dataStart + (sigOffset - 32176) + (total - 3) * sigSize);
  base.copy(out, 0, 0, 128);
  base.copy(out, dataStart, 32176, sigOffset);
  for (let slot = 0; slot < 3; slot++) {
    const rec = Buffer.from(base.subarray(4096 + slot * 585, 4096 + (slot + 1) * 585));
    rec.writeBigInt64LE(rec.readBigInt64LE(17) + BigInt(shift), 17);
    rec.copy(out, 4096 + slot * 585);
  }
  const sigRecord = base.subarray(4096 + 3 * 585, 4096 + 4 * 585);
  for (let slot = 3; slot < total; slot++) {
    const at = dataStart + (sigOffset - 32176) + (slot - 3) * sigSize;
    base.copy(out, at, sigOffset);
    const rec = Buffer.from(sigRecord);
    rec.writeUInt32LE(slot + 1, 5);
    rec.writeBigInt64LE(BigInt(at), 17);
    rec.copy(out, 4096 + slot * 585);
  }
  out.writeBigInt64LE(0n, 80);
  out.writeBigInt64LE(BigInt(total), 88);
  out.writeBigInt64LE(BigInt(total * 585), 104);
  out.writeBigInt64LE(BigInt(dataStart), 112);
  out.writeBigInt64LE(BigInt(out.length - dataStart), 120);
  let t = performance.now();
  const summary = await summarizeSif(new BufferSource(out));
  assert.equal(summary.signatures.length, total - 3);
  assert.ok(performance.now() - t < 30_000, `summary took ${performance.now() - t} ms`);
  t = performance.now();
  const result = await verifySif(new BufferSource(out), noKeys);
  assert.equal(result.signatures.length, total - 3);
  assert.ok(result.signatures.every((s) => s.keyMissing && s.integrity === 'ok'));
  assert.ok(performance.now() - t < 60_000, `verify took ${performance.now() - t} ms`);
});
