import {
  DESCRIPTOR_SIZE,
  DataType,
  GROUP_FLAG,
  GROUP_MASK,
  HEADER_SIZE,
  MAGIC,
  MAX_DESCRIPTORS,
  archName,
  dataTypeName,
} from './constants.js';
import { SifError } from './errors.js';
import { readExactly, type RandomAccessSource } from './source.js';

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

export interface SifDescriptor {
  /** Slot index in the descriptor table. */
  index: number;
  id: number;
  dataType: number;
  dataTypeName: string;
  rawGroupId: number;
  groupId: number;
  rawLinkedId: number;
  linkedId: number;
  linkIsGroup: boolean;
  offset: number;
  size: number;
  sizeWithPadding: number;
  createdAt: number;
  modifiedAt: number;
  name: string;
  extra: Buffer;
  /** The 585 raw bytes. */
  raw: Buffer;
}

export interface SifImage {
  header: SifHeader;
  descriptors: SifDescriptor[];
  /** Slot indices of unused descriptors. */
  freeSlots: number[];
  fileSize: number;
}

const cString = (buf: Buffer): string => {
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
};

/** An int64 field as a JS number, refusing values beyond 2^53 rather than rounding them. */
function int64(buf: Buffer, at: number, what: string): number {
  const v = buf.readBigInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new SifError('bad-header', `${what} out of range: ${v}`);
  }
  return Number(v);
}

export function formatUuid(bytes: Buffer): string {
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

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
  if (total < 0 || total > MAX_DESCRIPTORS) throw new SifError('bad-header', `descriptor count ${total} out of range`);
  if (free < 0 || free > total) throw new SifError('bad-header', `free descriptors ${free} exceed total ${total}`);
  if (dSize !== total * DESCRIPTOR_SIZE) throw new SifError('bad-header', `descriptor table size ${dSize} is not ${total} × ${DESCRIPTOR_SIZE}`);
  if (dOff < HEADER_SIZE || dOff + dSize > fileSize) throw new SifError('truncated', `descriptor table [${dOff}, ${dOff + dSize}) outside the file (${fileSize} bytes)`);
  if (header.dataOffset < 0 || header.dataSize < 0 || header.dataOffset + header.dataSize > fileSize) {
    throw new SifError('truncated', `data section [${header.dataOffset}, ${header.dataOffset + header.dataSize}) outside the file (${fileSize} bytes)`);
  }
  return header;
}

export function parseDescriptor(raw: Buffer, index: number, fileSize: number): SifDescriptor | null {
  if (raw[4] === 0) return null;
  const dataType = raw.readInt32LE(0);
  const rawGroupId = raw.readUInt32LE(9);
  const rawLinkedId = raw.readUInt32LE(13);
  const linkIsGroup = rawLinkedId !== 0 && (rawLinkedId & GROUP_FLAG) >>> 0 === GROUP_FLAG;
  const d: SifDescriptor = {
    index,
    id: raw.readUInt32LE(5),
    dataType,
    dataTypeName: dataTypeName(dataType),
    rawGroupId,
    groupId: rawGroupId & GROUP_MASK,
    rawLinkedId,
    linkedId: linkIsGroup ? rawLinkedId & GROUP_MASK : rawLinkedId,
    linkIsGroup,
    offset: int64(raw, 17, 'object offset'),
    size: int64(raw, 25, 'object size'),
    sizeWithPadding: int64(raw, 33, 'object size with padding'),
    createdAt: int64(raw, 41, 'object created at'),
    modifiedAt: int64(raw, 49, 'object modified at'),
    name: cString(raw.subarray(73, 201)),
    extra: Buffer.from(raw.subarray(201, 585)),
    raw: Buffer.from(raw),
  };
  if (d.id === 0) throw new SifError('bad-descriptor', `descriptor ${index} is in use but has ID 0`);
  if (d.offset < 0 || d.size < 0 || d.offset + d.size > fileSize) {
    throw new SifError('bad-descriptor', `object ${d.id}: data [${d.offset}, ${d.offset + d.size}) outside the file (${fileSize} bytes)`);
  }
  return d;
}

/** Reads and checks the header and descriptor table; never reads object data. */
export async function readSif(source: RandomAccessSource): Promise<SifImage> {
  if (source.size < HEADER_SIZE) throw new SifError('not-sif', `not a SIF image: only ${source.size} bytes`);
  const header = parseHeader(await readExactly(source, 0, HEADER_SIZE, 'SIF header'), source.size);
  const table = await readExactly(source, header.descriptorsOffset, header.descriptorsSize, 'descriptor table');
  const descriptors: SifDescriptor[] = [];
  const freeSlots: number[] = [];
  const ids = new Set<number>();
  for (let i = 0; i < header.descriptorsTotal; i++) {
    const d = parseDescriptor(table.subarray(i * DESCRIPTOR_SIZE, (i + 1) * DESCRIPTOR_SIZE), i, source.size);
    if (!d) {
      freeSlots.push(i);
      continue;
    }
    if (ids.has(d.id)) throw new SifError('bad-descriptor', `object ID ${d.id} is used twice`);
    ids.add(d.id);
    descriptors.push(d);
  }
  return { header, descriptors, freeSlots, fileSize: source.size };
}

/** Relative ID: object ID − the smallest ID among objects with the same raw group value. */
export function relativeId(image: SifImage, d: SifDescriptor): number {
  let min = d.id;
  for (const o of image.descriptors) if (o.rawGroupId === d.rawGroupId && o.id < min) min = o.id;
  return d.id - min;
}

export const isSignature = (d: SifDescriptor): boolean => d.dataType === DataType.Signature;
