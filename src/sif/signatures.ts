import { HASH_TYPES, MAX_TEXT_OBJECT } from './constants.js';
import type { SifDescriptor } from './descriptors.js';
import { parseDsse } from './dsse.js';
import { readObject } from './objects.js';
import { pgpIssuer, readClearSigned } from './pgp.js';
import type { RandomAccessSource } from './source.js';

export type SignatureFormat = 'pgp-clearsign' | 'pgp-clearsign-legacy' | 'dsse';

export interface SignatureInfo {
  hashType: number;
  hash: string;
  /** 40 upper-case hex from the descriptor, or null (DSSE). */
  fingerprint: string | null;
  /** null when the object is neither a DSSE envelope nor a clear-signed message. */
  format: SignatureFormat | null;
  /** The signed text as the signature carries it (metadata JSON, or legacy SIFHASH text). */
  signedText: string | null;
  pgpIssuerKeyId: string | null;
  pgpIssuerFingerprint: string | null;
  dsseKeyIds: string[];
  /** Why the object could not be read (too large), if so. */
  unreadable?: string;
}

export const LEGACY_PREFIX = 'SIFHASH:\n';

export function descriptorFingerprint(d: SifDescriptor): string | null {
  const fp = d.extra.subarray(4, 24);
  return fp.every((b) => b === 0) ? null : fp.toString('hex').toUpperCase();
}

/** What a signature object claims, without verifying it: format, signed text, issuer. */
export async function signatureInfo(source: RandomAccessSource, d: SifDescriptor): Promise<SignatureInfo> {
  const hashType = d.extra.readInt32LE(0);
  const info: SignatureInfo = {
    hashType,
    hash: HASH_TYPES[hashType]?.name ?? 'Unknown',
    fingerprint: descriptorFingerprint(d),
    format: null,
    signedText: null,
    pgpIssuerKeyId: null,
    pgpIssuerFingerprint: null,
    dsseKeyIds: [],
  };
  if (d.size > MAX_TEXT_OBJECT) {
    info.unreadable = `signature object ${d.id} is ${d.size} bytes, more than ${MAX_TEXT_OBJECT} read`;
    return info;
  }
  const data = await readObject(source, d);
  const dsse = parseDsse(data);
  if (dsse) {
    info.format = 'dsse';
    info.signedText = Buffer.from(dsse.payload, 'base64').toString('utf8');
    info.dsseKeyIds = dsse.signatures.map((s) => s.keyid).filter(Boolean);
    return info;
  }
  const message = await readClearSigned(data);
  if (message) {
    const text = message.getText();
    info.format = text.startsWith(LEGACY_PREFIX) ? 'pgp-clearsign-legacy' : 'pgp-clearsign';
    info.signedText = text;
    const issuer = pgpIssuer(message);
    info.pgpIssuerKeyId = issuer.keyId;
    info.pgpIssuerFingerprint = issuer.fingerprint;
  }
  return info;
}
