import { createHash, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import * as openpgp from 'openpgp';
import { DSSE_PAYLOAD_TYPE, HASH_TYPES } from './constants.js';
import { SifError } from './errors.js';
import { isSignature, readSif, type SifDescriptor, type SifImage } from './format.js';
import { checkMetadata, groupIds, groupObjects } from './integrity.js';
import { KeyChain, sshKeyId, type KeyProvider } from './keys.js';
import { parseDsse, readClearSigned, readObject, signatureFingerprint, type SignatureFormat } from './objects.js';
import type { RandomAccessSource } from './source.js';

export interface SignatureResult {
  /** The signature object's ID. */
  id: number;
  format: SignatureFormat | null;
  linkedGroup: number | null;
  linkedObject: number | null;
  ok: boolean;
  error?: string;
  /** PGP: the signer as found in the key material. */
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
  ok: boolean;
  signatures: SignatureResult[];
  /** Why the image as a whole failed, when no single signature explains it. */
  error?: string;
}

/**
 * Verifies every signature of an image as `apptainer verify` does: each must check out with
 * the keys given, and every object group must be signed.
 */
export async function verifySif(source: RandomAccessSource, keys: KeyProvider): Promise<VerifyResult> {
  const image = await readSif(source);
  const signatures = image.descriptors.filter(isSignature).sort((a, b) => a.id - b.id);
  const results: SignatureResult[] = [];
  for (const d of signatures) results.push(await verifyOne(source, image, d, keys));
  let error: string | undefined;
  const ungrouped = image.descriptors.find((d) => !isSignature(d) && d.groupId === 0);
  if (signatures.length === 0) error = 'no signatures found';
  else if (ungrouped) error = `non-signature object ${ungrouped.id} not associated with an object group`;
  else {
    for (const g of groupIds(image)) {
      const covered = results.some(
        (r) => r.linkedGroup === g || (r.linkedObject !== null && groupObjects(image, g).some((o) => o.id === r.linkedObject)),
      );
      if (!covered) error ??= `signature not found for object group ${g}`;
    }
  }
  return { ok: !error && results.every((r) => r.ok), signatures: results, ...(error ? { error } : {}) };
}

async function verifyOne(source: RandomAccessSource, image: SifImage, d: SifDescriptor, keys: KeyProvider): Promise<SignatureResult> {
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
  try {
    const data = await readObject(source, d);
    const dsse = parseDsse(data);
    if (dsse) {
      result.format = 'dsse';
      claimed = Buffer.from(dsse.payload, 'base64').toString('utf8');
      const { payload, keyIds } = verifyDsse(dsse, await keys.dsseKeys());
      result.dsseKeyIds = keyIds;
      result.objects = await checkCovered(source, image, d, payload);
    } else {
      const message = await readClearSigned(data);
      if (!message) throw new SifError('bad-signature', 'unknown signature format');
      const text = message.getText();
      claimed = text;
      result.legacy = text.startsWith('SIFHASH:\n');
      result.format = result.legacy ? 'pgp-clearsign-legacy' : 'pgp-clearsign';
      result.signer = await verifyPgp(message, d, keys);
      result.objects = result.legacy ? await checkLegacy(source, image, d, text) : await checkCovered(source, image, d, text);
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
      result.integrity = await (result.legacy ? checkLegacy(source, image, d, claimed) : checkCovered(source, image, d, claimed)).then(
        () => 'ok' as const,
        () => 'broken' as const,
      );
    }
  }
  return result;
}

/** The metadata of a current signature, against the group (or single object) it is linked to. */
async function checkCovered(source: RandomAccessSource, image: SifImage, d: SifDescriptor, metadata: string): Promise<number[]> {
  if (d.linkIsGroup) return checkMetadata(source, image, d.linkedId, metadata);
  const target = image.descriptors.find((o) => o.id === d.linkedId);
  if (!target) throw new SifError('bad-signature', `linked object ${d.linkedId} does not exist`);
  return checkMetadata(source, image, target.groupId, metadata, [target.id]);
}

async function verifyPgp(message: openpgp.CleartextMessage, d: SifDescriptor, keys: KeyProvider) {
  const keyId = message.getSigningKeyIDs()[0]?.toHex().toUpperCase();
  if (!keyId) throw new SifError('bad-signature', 'the signature names no issuer key');
  const candidates = await keys.pgpKeys(keyId);
  if (candidates.length === 0) throw new SifError('key-not-found', `signing key 0x${keyId} not found`);
  let verified: openpgp.PublicKey | undefined;
  let lastError = 'signature made by unknown entity';
  // Go's verifier, which Apptainer uses, accepts a key whose self-signature is newer than the
  // signature (a key re-exported or reformatted later); OpenPGP.js needs to be told so.
  const lenient = { allowInsecureVerificationWithReformattedKeys: true };
  for (const key of candidates) {
    for (const config of [undefined, lenient]) {
      try {
        const { signatures } = await openpgp.verify({ message, verificationKeys: key, expectSigned: true, ...(config ? { config } : {}) });
        await signatures[0]!.verified;
        verified = key;
        break;
      } catch (err) {
        lastError = (err as Error).message.replace(/^Error verifying signed message: /, '');
      }
    }
    if (verified) break;
  }
  if (!verified) throw new SifError('bad-signature', lastError);
  const fingerprint = verified.getFingerprint().toUpperCase();
  const claimed = signatureFingerprint(d);
  if (claimed && claimed !== fingerprint) throw new SifError('bad-signature', 'fingerprint in descriptor does not correspond to signing entity');
  const user = await verified.getPrimaryUser().catch(() => null);
  const source = keys instanceof KeyChain ? await keys.labelOf(keyId) : keys.label;
  return { fingerprint, keyId, userId: user?.user.userID?.userID ?? '', source };
}

/** DSSE v1 pre-authentication encoding. */
export const pae = (type: string, payload: Buffer): Buffer =>
  Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `), payload]);

export function verifyWithKey(key: KeyObject, data: Buffer, sig: Buffer): boolean {
  try {
    if (key.asymmetricKeyType === 'ed25519') return cryptoVerify(null, data, key, sig);
    if (key.asymmetricKeyType === 'ec') return cryptoVerify('sha256', data, { key, dsaEncoding: 'der' }, sig);
    if (key.asymmetricKeyType === 'rsa') return cryptoVerify('sha256', data, key, sig);
  } catch {
    return false;
  }
  return false;
}

function verifyDsse(env: { payloadType: string; payload: string; signatures: Array<{ keyid?: string; sig: string }> }, keys: KeyObject[]) {
  if (keys.length === 0) throw new SifError('key-not-found', 'a DSSE signature needs a public key (--key)');
  const payload = Buffer.from(env.payload, 'base64');
  const message = pae(DSSE_PAYLOAD_TYPE, payload);
  const keyIds: string[] = [];
  for (const s of env.signatures) {
    for (const key of keys) {
      const id = sshKeyId(key);
      if (s.keyid && s.keyid !== id) continue;
      if (verifyWithKey(key, message, Buffer.from(s.sig, 'base64'))) keyIds.push(id);
    }
  }
  if (keyIds.length === 0) throw new SifError('bad-signature', 'no DSSE signature verifies with the given key(s)');
  return { payload: payload.toString('utf8'), keyIds };
}

/** Legacy `SIFHASH:` signatures: a digest of the linked object's data, or of its group's objects. */
async function checkLegacy(source: RandomAccessSource, image: SifImage, d: SifDescriptor, text: string): Promise<number[]> {
  const expected = text.slice('SIFHASH:\n'.length).trim().toLowerCase();
  const algorithm = HASH_TYPES[d.extra.readInt32LE(0)]?.node;
  if (!algorithm) throw new SifError('bad-signature', 'unsupported legacy hash type');
  const objects = d.linkIsGroup ? groupObjects(image, d.linkedId) : image.descriptors.filter((o) => o.id === d.linkedId);
  if (objects.length === 0) throw new SifError('bad-signature', 'legacy signature is linked to nothing');
  const h = createHash(algorithm);
  for (const o of objects) {
    for (let at = 0; at < o.size; at += 4 << 20) h.update(await source.read(o.offset + at, Math.min(4 << 20, o.size - at)));
  }
  if (h.digest('hex') !== expected) throw new SifError('bad-signature', `data object integrity compromised: ${objects.map((o) => o.id).join(',')}`);
  return objects.map((o) => o.id);
}
