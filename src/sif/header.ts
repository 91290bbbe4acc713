import { DESCRIPTOR_SIZE, HEADER_SIZE, MAGIC, MAX_DESCRIPTORS, archName } from './constants.js';
import { SifError } from './errors.js';
import { cString, int64 } from './fields.js';

export interface SifHeader {
  launchScript: string;
  magic: string;
  version: string;
  archCode: string;
  arch: string;
  uuid: string;
  createdAt: number;
  modifiedAt: number;
  descriptorsFree: number;
  descriptorsTotal: number;
  descriptorsOffset: number;
  descriptorsSize: number;
  dataOffset: number;
  dataSize: number;
  /** The 128 raw bytes, for integrity digests and rewriting. */
  raw: Buffer;
}

export function formatUuid(bytes: Buffer): string {
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** Decodes and checks the 128-byte global header against the size of the file. */
export function parseHeader(raw: Buffer, fileSize: number): SifHeader {
  if (raw.length < HEADER_SIZE) throw new SifError('not-sif', `not a SIF image: only ${raw.length} bytes`);
  const magic = cString(raw.subarray(32, 42));
  if (magic !== MAGIC || raw[41] !== 0) throw new SifError('not-sif', 'not a SIF image: no SIF_MAGIC');
  const version = cString(raw.subarray(42, 45));
  if (version !== '01') throw new SifError('unsupported-version', `unsupported SIF version ${JSON.stringify(version)}`);
  const archCode = cString(raw.subarray(45, 48));
  const header: SifHeader = {
    launchScript: cString(raw.subarray(0, 32)),
    magic,
    version,
    archCode,
    arch: archName(archCode),
    uuid: formatUuid(raw.subarray(48, 64)),
    createdAt: int64(raw, 64, 'created at'),
    modifiedAt: int64(raw, 72, 'modified at'),
    descriptorsFree: int64(raw, 80, 'descriptors free'),
    descriptorsTotal: int64(raw, 88, 'descriptors total'),
    descriptorsOffset: int64(raw, 96, 'descriptors offset'),
    descriptorsSize: int64(raw, 104, 'descriptors size'),
    dataOffset: int64(raw, 112, 'data offset'),
    dataSize: int64(raw, 120, 'data size'),
    raw: Buffer.from(raw.subarray(0, HEADER_SIZE)),
  };
  const { descriptorsTotal: total, descriptorsFree: free, descriptorsOffset: dOff, descriptorsSize: dSize } = header;
  if (total < 0 || total > MAX_DESCRIPTORS) throw new SifError('bad-header', `descriptor count ${total} out of range (at most ${MAX_DESCRIPTORS})`);
  if (free < 0 || free > total) throw new SifError('bad-header', `free descriptors ${free} exceed total ${total}`);
  if (dSize !== total * DESCRIPTOR_SIZE) throw new SifError('bad-header', `descriptor table size ${dSize} is not ${total} × ${DESCRIPTOR_SIZE}`);
  if (dOff < HEADER_SIZE || dOff + dSize > fileSize) throw new SifError('truncated', `descriptor table [${dOff}, ${dOff + dSize}) outside the file (${fileSize} bytes)`);
  if (header.dataOffset < 0 || header.dataSize < 0 || header.dataOffset + header.dataSize > fileSize) {
    throw new SifError('truncated', `data section [${header.dataOffset}, ${header.dataOffset + header.dataSize}) outside the file (${fileSize} bytes)`);
  }
  return header;
}
