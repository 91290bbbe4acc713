import type { KeyObject } from 'node:crypto';
import type * as openpgp from 'openpgp';
import { HASH_TYPES } from './constants.js';
import type { SifDescriptor } from './descriptors.js';
import { parseDsse, verifyDsse } from './dsse.js';
import { SifError } from './errors.js';
import { findObject, groupIds, groupObjects, isSignature, readSif, type SifImage } from './image.js';
import { checkMetadata, hashObjects, type DigestCache } from './integrity.js';
import { KeyChain, type KeyProvider } from './keys.js';
import { readObject } from './objects.js';
import { pgpFingerprint, pgpIssuer, primaryUserId, readClearSigned, verifyClearSigned } from './pgp.js';
import { LEGACY_PREFIX, descriptorFingerprint, type SignatureFormat } from './signatures.js';
import type { RandomAccessSource } from './source.js';

export interface SignatureResult {
  /** The signature object's ID. */
  id: number;
  format: SignatureFormat | null;
  linkedGroup: number | null;
  linkedObject: number | null;
  ok: boolean;
  /** Why it failed: `signature object N not valid: …`, naming the bad object when the image changed. */
  error?: string;
  /** PGP: the signer as found in the key material (`source` is the provider's label). */
  signer?: { fingerprint: string; keyId: string; userId: string; source: string };
  /** DSSE: key IDs of the keys that verified. */
  dsseKeyIds?: string[];
  /** Object IDs this signature covers, when it verified. */
  objects: number[];
  /** Legacy SIFHASH signature: no descriptor metadata protected. */
  legacy: boolean;
  /**
   * Whether the image matches what the signature claims, checked even when its key is missing:
   * 'ok', 'broken' (the image was changed), or 'unchecked' (the signature could not be read).
   */
  integrity: 'ok' | 'broken' | 'unchecked';
  /** The signature failed only because its key is not known. */
  keyMissing: boolean;
}

export interface VerifyResult {
  /** Every signature verified and every object group is signed. */
  ok: boolean;
  signatures: SignatureResult[];
  /** Why the image as a whole failed, when no single signature explains it. */
  error?: string;
}

/**
 * Verifies every signature of an image as `apptainer verify` does: each must check out with
 * the keys given, and every object group must be signed. Partition data is streamed and each
 * object hashed at most once per digest algorithm.
 */
export async function verifySif(source: RandomAccessSource, keys: KeyProvider): Promise<VerifyResult> {
  const image = await readSif(source);
  const signatures = image.descriptors.filter(isSignature).sort((a, b) => a.id - b.id);
  const cache: DigestCache = new Map();
  const memo = memoizedKeys(keys);
  const results: SignatureResult[] = [];
  for (const d of signatures) results.push(await verifyOne(source, image, d, memo, cache));
  let error: string | undefined;
  const ungrouped = image.descriptors.find((d) => !isSignature(d) && d.groupId === 0);
  if (signatures.length === 0) error = 'no signatures found';
  else if (ungrouped) error = `non-signature object ${ungrouped.id} not associated with an object group`;
  else {
    const groupOf = new Map(image.descriptors.map((d) => [d.id, d.groupId]));
    const covered = new Set(results.map((r) => r.linkedGroup ?? (r.linkedObject !== null ? groupOf.get(r.linkedObject) : undefined)));
    const unsigned = groupIds(image).find((g) => !covered.has(g));
    if (unsigned !== undefined) error = `signature not found for object group ${unsigned}`;
  }
  return { ok: !error && results.every((r) => r.ok), signatures: results, ...(error ? { error } : {}) };
}

interface KeyLookup {
  pgp(id: string): Promise<{ keys: openpgp.PublicKey[]; label: string }>;
  dsse(): Promise<KeyObject[]>;
}

/** One lookup per key ID per verification, however many signatures name it (a keyserver is remote). */
function memoizedKeys(keys: KeyProvider): KeyLookup {
  const pgp = new Map<string, Promise<{ keys: openpgp.PublicKey[]; label: string }>>();
  let dsse: Promise<KeyObject[]> | undefined;
  return {
    pgp(id) {
      const key = id.toUpperCase();
      let found = pgp.get(key);
      if (!found) {
        found = keys instanceof KeyChain ? keys.find(key) : keys.pgpKeys(key).then((k) => ({ keys: k, label: keys.label }));
        pgp.set(key, found);
      }
      return found;
    },
    dsse: () => (dsse ??= keys.dsseKeys()),
  };
}

async function verifyOne(source: RandomAccessSource, image: SifImage, d: SifDescriptor, keys: KeyLookup, cache: DigestCache): Promise<SignatureResult> {
  const result: SignatureResult = {
    id: d.id,
    format: null,
    linkedGroup: d.linkIsGroup ? d.linkedId : null,
    linkedObject: !d.linkIsGroup && d.linkedId !== 0 ? d.linkedId : null,
    ok: false,
    objects: [],
    legacy: false,
    integrity: 'unchecked',
    keyMissing: false,
  };
  let claimed: string | null = null;
  const check = (text: string) => (result.legacy ? checkLegacy(source, image, d, text, cache) : checkCovered(source, image, d, text, cache));
  try {
    const data = await readObject(source, d);
    const dsse = parseDsse(data);
    if (dsse) {
      result.format = 'dsse';
      claimed = Buffer.from(dsse.payload, 'base64').toString('utf8');
      const { payload, keyIds } = verifyDsse(dsse, await keys.dsse());
      result.dsseKeyIds = keyIds;
      result.objects = await check(payload);
    } else {
      const message = await readClearSigned(data);
      if (!message) throw new SifError('bad-signature', 'unknown signature format');
      const text = message.getText();
      claimed = text;
      result.legacy = text.startsWith(LEGACY_PREFIX);
      result.format = result.legacy ? 'pgp-clearsign-legacy' : 'pgp-clearsign';
      result.signer = await verifyPgp(message, d, keys);
      result.objects = await check(text);
    }
    result.ok = true;
    result.integrity = 'ok';
  } catch (err) {
    if (!(err instanceof SifError)) throw err;
    result.error = `signature object ${d.id} not valid: ${err.message}`;
    result.keyMissing = err.code === 'key-not-found';
    if (/integrity compromised|changed/.test(err.message)) result.integrity = 'broken';
    else if (result.keyMissing && claimed !== null) {
      // Without the key the signature proves nothing, but a changed image is still worth knowing.
      result.integrity = await check(claimed).then(
        () => 'ok' as const,
        () => 'broken' as const,
      );
    }
  }
  return result;
}

/** The metadata of a current signature, against the group (or single object) it is linked to. */
async function checkCovered(source: RandomAccessSource, image: SifImage, d: SifDescriptor, metadata: string, cache: DigestCache): Promise<number[]> {
  if (d.linkIsGroup) return checkMetadata(source, image, d.linkedId, metadata, undefined, cache);
  const target = findObject(image, d.linkedId);
  if (!target || isSignature(target)) throw new SifError('bad-signature', `linked object ${d.linkedId} does not exist`);
  return checkMetadata(source, image, target.groupId, metadata, target.id, cache);
}

/**
 * Finds the signer's key by the issuer key ID (else the issuer or descriptor fingerprint), checks
 * the signature, and that the key's primary fingerprint is the one the descriptor names.
 */
async function verifyPgp(message: openpgp.CleartextMessage, d: SifDescriptor, keys: KeyLookup) {
  const issuer = pgpIssuer(message);
  const claimed = descriptorFingerprint(d);
  const lookup = issuer.keyId ?? issuer.fingerprint ?? claimed;
  if (!lookup) throw new SifError('bad-signature', 'the signature names no issuer key');
  const found = await keys.pgp(lookup);
  if (found.keys.length === 0) throw new SifError('key-not-found', `signing key 0x${lookup} not found`);
  const key = await verifyClearSigned(message, found.keys);
  const fingerprint = pgpFingerprint(key);
  if (claimed && claimed !== fingerprint) throw new SifError('bad-signature', 'fingerprint in descriptor does not correspond to signing entity');
  return { fingerprint, keyId: issuer.keyId ?? key.getKeyID().toHex().toUpperCase(), userId: await primaryUserId(key), source: found.label };
}

/** Legacy `SIFHASH:` signatures: a digest of the linked object's data, or of its group's objects in ID order. */
async function checkLegacy(source: RandomAccessSource, image: SifImage, d: SifDescriptor, text: string, cache: DigestCache): Promise<number[]> {
  const expected = text.slice(LEGACY_PREFIX.length).trim().toLowerCase();
  const algorithm = HASH_TYPES[d.extra.readInt32LE(0)]?.node;
  if (!algorithm) throw new SifError('bad-signature', 'unsupported legacy hash type');
  const target = findObject(image, d.linkedId);
  const objects = d.linkIsGroup ? groupObjects(image, d.linkedId) : target && !isSignature(target) ? [target] : [];
  if (objects.length === 0) throw new SifError('bad-signature', 'legacy signature is linked to nothing');
  const cacheKey = `legacy:${algorithm}:${objects.map((o) => o.id).join(',')}`;
  const actual = cache.get(cacheKey) ?? (await hashObjects(source, objects, algorithm));
  cache.set(cacheKey, actual);
  if (actual !== expected) throw new SifError('bad-signature', `data object integrity compromised: ${objects.map((o) => o.id).join(',')}`);
  return objects.map((o) => o.id);
}
