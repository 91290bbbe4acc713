import * as openpgp from 'openpgp';
import { DSSE_PAYLOAD_TYPE, DataType, ENCRYPTED_FS_TYPES, FS_TYPES, HASH_TYPES, MAX_TEXT_OBJECT, PART_PRIMARY_SYSTEM, PART_TYPES, archName } from './constants.js';
import { SifError } from './errors.js';
import type { SifDescriptor } from './format.js';
import { readExactly, type RandomAccessSource } from './source.js';

/** An object's data, refusing objects too big to hold in memory (only for small objects). */
export async function readObject(source: RandomAccessSource, d: SifDescriptor, limit = MAX_TEXT_OBJECT): Promise<Buffer> {
  if (d.size > limit) throw new SifError('too-large', `object ${d.id} is ${d.size} bytes, more than ${limit} read into memory`);
  return readExactly(source, d.offset, d.size, `object ${d.id}`);
}

export interface PartitionInfo {
  fsType: number;
  fsTypeName: string;
  partType: number;
  partTypeName: string;
  archCode: string;
  arch: string;
  isPrimarySystem: boolean;
  encrypted: boolean;
}

export function partitionInfo(d: SifDescriptor): PartitionInfo {
  const fsType = d.extra.readInt32LE(0);
  const partType = d.extra.readInt32LE(4);
  const end = d.extra.indexOf(0, 8);
  const archCode = d.extra.subarray(8, end < 8 || end > 11 ? 11 : end).toString('latin1');
  return {
    fsType,
    fsTypeName: FS_TYPES[fsType] ?? 'Unknown',
    partType,
    partTypeName: PART_TYPES[partType] ?? 'Unknown',
    archCode,
    arch: archName(archCode),
    isPrimarySystem: partType === PART_PRIMARY_SYSTEM,
    encrypted: ENCRYPTED_FS_TYPES.has(fsType),
  };
}

export type SignatureFormat = 'pgp-clearsign' | 'pgp-clearsign-legacy' | 'dsse';

export interface SignatureInfo {
  hashType: number;
  hash: string;
  /** 40 upper-case hex from the descriptor, or null (DSSE). */
  fingerprint: string | null;
  format: SignatureFormat | null;
  /** The signed text as the signature carries it (metadata JSON, or legacy SIFHASH text). */
  signedText: string | null;
  pgpIssuerKeyId: string | null;
  dsseKeyIds: string[];
}

export function signatureFingerprint(d: SifDescriptor): string | null {
  const fp = d.extra.subarray(4, 24);
  return fp.every((b) => b === 0) ? null : fp.toString('hex').toUpperCase();
}

interface DsseEnvelope {
  payloadType: string;
  payload: string;
  signatures: Array<{ keyid?: string; sig: string }>;
}

export function parseDsse(data: Buffer): DsseEnvelope | null {
  if (data[0] !== 0x7b) return null;
  let env: unknown;
  try {
    env = JSON.parse(data.toString('utf8'));
  } catch {
    return null;
  }
  const e = env as Partial<DsseEnvelope>;
  if (e?.payloadType !== DSSE_PAYLOAD_TYPE || typeof e.payload !== 'string' || !Array.isArray(e.signatures)) return null;
  return e as DsseEnvelope;
}

/** Reads a clear-signed message; null if the data is not one. */
export async function readClearSigned(data: Buffer): Promise<openpgp.CleartextMessage | null> {
  const text = data.toString('utf8');
  if (!text.startsWith('-----BEGIN PGP SIGNED MESSAGE-----')) return null;
  try {
    return await openpgp.readCleartextMessage({ cleartextMessage: text });
  } catch {
    return null;
  }
}

export async function signatureInfo(source: RandomAccessSource, d: SifDescriptor): Promise<SignatureInfo> {
  const hashType = d.extra.readInt32LE(0);
  const info: SignatureInfo = {
    hashType,
    hash: HASH_TYPES[hashType]?.name ?? 'Unknown',
    fingerprint: signatureFingerprint(d),
    format: null,
    signedText: null,
    pgpIssuerKeyId: null,
    dsseKeyIds: [],
  };
  const data = await readObject(source, d);
  const dsse = parseDsse(data);
  if (dsse) {
    info.format = 'dsse';
    info.signedText = Buffer.from(dsse.payload, 'base64').toString('utf8');
    info.dsseKeyIds = dsse.signatures.map((s) => s.keyid ?? '').filter(Boolean);
    return info;
  }
  const message = await readClearSigned(data);
  if (message) {
    const text = message.getText();
    info.format = text.startsWith('SIFHASH:\n') ? 'pgp-clearsign-legacy' : 'pgp-clearsign';
    info.signedText = text;
    const issuer = message.getSigningKeyIDs()[0];
    info.pgpIssuerKeyId = issuer && !/^0+$/.test(issuer.toHex()) ? issuer.toHex().toUpperCase() : null;
  }
  return info;
}

export const isTextObject = (d: SifDescriptor): boolean =>
  d.dataType === DataType.Deffile || d.dataType === DataType.EnvVar || d.dataType === DataType.Labels || d.dataType === DataType.GenericJSON;
