import { DESCRIPTOR_SIZE, DataType, HEADER_SIZE } from './constants.js';
import { parseDescriptor, type SifDescriptor } from './descriptors.js';
import { SifError } from './errors.js';
import { parseHeader, type SifHeader } from './header.js';
import { readExactly, type RandomAccessSource } from './source.js';

export interface SifImage {
  header: SifHeader;
  /** Used descriptors in table order. */
  descriptors: SifDescriptor[];
  /** Slot indices of unused descriptors. */
  freeSlots: number[];
  fileSize: number;
  /** Smallest object ID per raw group value, for relative IDs. */
  minIdByRawGroup: Map<number, number>;
}

/** Reads and checks the header and descriptor table; never reads object data. */
export async function readSif(source: RandomAccessSource): Promise<SifImage> {
  if (source.size < HEADER_SIZE) throw new SifError('not-sif', `not a SIF image: only ${source.size} bytes`);
  const header = parseHeader(await readExactly(source, 0, HEADER_SIZE, 'SIF header'), source.size);
  const table = await readExactly(source, header.descriptorsOffset, header.descriptorsSize, 'descriptor table');
  const descriptors: SifDescriptor[] = [];
  const freeSlots: number[] = [];
  const ids = new Set<number>();
  const minIdByRawGroup = new Map<number, number>();
  for (let i = 0; i < header.descriptorsTotal; i++) {
    const d = parseDescriptor(table.subarray(i * DESCRIPTOR_SIZE, (i + 1) * DESCRIPTOR_SIZE), i, source.size);
    if (!d) {
      freeSlots.push(i);
      continue;
    }
    if (ids.has(d.id)) throw new SifError('bad-descriptor', `object ID ${d.id} is used twice`);
    ids.add(d.id);
    descriptors.push(d);
    const min = minIdByRawGroup.get(d.rawGroupId);
    if (min === undefined || d.id < min) minIdByRawGroup.set(d.rawGroupId, d.id);
  }
  checkNoOverlap(descriptors);
  return { header, descriptors, freeSlots, fileSize: source.size, minIdByRawGroup };
}

/**
 * Writers never let objects share bytes. Refusing overlaps bounds every reader's work by the
 * file's size: otherwise thousands of descriptors could point at the same gigabyte.
 */
function checkNoOverlap(descriptors: SifDescriptor[]): void {
  const byOffset = descriptors.filter((d) => d.size > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const d = byOffset[i]!;
    if (d.offset < prev.offset + prev.size) throw new SifError('bad-descriptor', `objects ${prev.id} and ${d.id} overlap`);
  }
}

/** Relative ID: object ID − the smallest ID among objects with the same raw group value. */
export const relativeId = (image: SifImage, d: SifDescriptor): number => d.id - (image.minIdByRawGroup.get(d.rawGroupId) ?? d.id);

export const isSignature = (d: SifDescriptor): boolean => d.dataType === DataType.Signature;

export const findObject = (image: SifImage, id: number): SifDescriptor | undefined => image.descriptors.find((d) => d.id === id);

/** The objects of a group, in ID order (signatures are in no group). */
export const groupObjects = (image: SifImage, group: number): SifDescriptor[] =>
  image.descriptors.filter((d) => !isSignature(d) && d.groupId === group && d.rawGroupId !== 0).sort((a, b) => a.id - b.id);

/** The groups of an image with at least one object, ascending. */
export const groupIds = (image: SifImage): number[] =>
  [...new Set(image.descriptors.filter((d) => !isSignature(d) && d.groupId !== 0).map((d) => d.groupId))].sort((a, b) => a - b);
