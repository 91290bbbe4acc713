import { GROUP_FLAG, GROUP_MASK, dataTypeName } from './constants.js';
import { SifError } from './errors.js';
import { cString, int64 } from './fields.js';

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

/** Decodes one 585-byte record; null for an unused slot. The object must lie inside the file. */
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
    offset: int64(raw, 17, `descriptor ${index}: object offset`, 'bad-descriptor'),
    size: int64(raw, 25, `descriptor ${index}: object size`, 'bad-descriptor'),
    sizeWithPadding: int64(raw, 33, `descriptor ${index}: object size with padding`, 'bad-descriptor'),
    createdAt: int64(raw, 41, `descriptor ${index}: created at`, 'bad-descriptor'),
    modifiedAt: int64(raw, 49, `descriptor ${index}: modified at`, 'bad-descriptor'),
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
