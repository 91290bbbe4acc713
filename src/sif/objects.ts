import { DataType, ENCRYPTED_FS_TYPES, FS_TYPES, MAX_TEXT_OBJECT, PART_PRIMARY_SYSTEM, PART_TYPES, archName } from './constants.js';
import type { SifDescriptor } from './descriptors.js';
import { SifError } from './errors.js';
import { readExactly, type RandomAccessSource } from './source.js';

/** An object's data, refusing objects too big to hold in memory (only for small objects). */
export async function readObject(source: RandomAccessSource, d: SifDescriptor, limit = MAX_TEXT_OBJECT): Promise<Buffer> {
  if (d.size > limit) throw new SifError('too-large', `object ${d.id} is ${d.size} bytes, more than ${limit} read into memory`);
  return readExactly(source, d.offset, d.size, `object ${d.id}`);
}

/** An object's text if it is small enough to read, else null. */
export async function readSmallText(source: RandomAccessSource, d: SifDescriptor, limit = MAX_TEXT_OBJECT): Promise<string | null> {
  return d.size > limit ? null : (await readObject(source, d, limit)).toString('utf8');
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

/** The primary system partition: the first partition descriptor of type PrimSys. */
export const primaryPartition = (descriptors: SifDescriptor[]): SifDescriptor | undefined =>
  descriptors.find((d) => d.dataType === DataType.Partition && partitionInfo(d).isPrimarySystem);

export interface CryptoMessageInfo {
  formatType: number;
  formatName: string;
  messageType: number;
  messageName: string;
}

const CRYPTO_FORMATS: Record<number, string> = { 1: 'OpenPGP', 2: 'PEM' };
const CRYPTO_MESSAGES: Record<number, string> = { 0x100: 'clear signature', 0x200: 'RSA-OAEP' };
const MESSAGE_RSA_OAEP = 0x200;

export function cryptoMessageInfo(d: SifDescriptor): CryptoMessageInfo {
  const formatType = d.extra.readInt32LE(0);
  const messageType = d.extra.readInt32LE(4);
  return { formatType, formatName: CRYPTO_FORMATS[formatType] ?? 'Unknown', messageType, messageName: CRYPTO_MESSAGES[messageType] ?? 'Unknown' };
}

export const SBOM_FORMATS: Record<number, string> = {
  1: 'cyclonedx-json', 2: 'cyclonedx-xml', 3: 'github-json', 4: 'spdx-json', 5: 'spdx-rdf', 6: 'spdx-tag-value', 7: 'spdx-yaml', 8: 'syft-json',
};
export const sbomFormat = (d: SifDescriptor): string => SBOM_FORMATS[d.extra.readInt32LE(0)] ?? 'unknown';

/**
 * An encrypted partition (LUKS or gocryptfs squashfs), or the RSA-OAEP key message Apptainer
 * stores for one. A crypto message of the clear-signature kind encrypts nothing.
 */
export const isEncrypted = (descriptors: SifDescriptor[]): boolean =>
  descriptors.some(
    (d) =>
      (d.dataType === DataType.Partition && partitionInfo(d).encrypted) ||
      (d.dataType === DataType.CryptoMessage && cryptoMessageInfo(d).messageType === MESSAGE_RSA_OAEP),
  );

export const isTextObject = (d: SifDescriptor): boolean =>
  d.dataType === DataType.Deffile || d.dataType === DataType.EnvVar || d.dataType === DataType.Labels || d.dataType === DataType.GenericJSON;
