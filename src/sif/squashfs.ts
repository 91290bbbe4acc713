import zlib from 'node:zlib';
import { DataType, MAX_TEXT_OBJECT } from './constants.js';
import type { SifDescriptor } from './descriptors.js';
import { SifError } from './errors.js';
import { stringMap } from './labels.js';
import { partitionInfo } from './objects.js';
import type { RandomAccessSource } from './source.js';

/**
 * Just enough of a squashfs 4.0 reader to fetch one small file by path (Apptainer's
 * `/.singularity.d/labels.json`): superblock, metadata blocks, directory listings, regular file
 * inodes, data blocks and fragments. gzip (Apptainer's default) and uncompressed blocks are
 * read, zstd where node:zlib has it; other compressors are reported as unsupported. Every offset
 * and size is checked against the partition and every read is capped.
 */

const SQUASHFS_MAGIC = 0x73717368;
const METADATA_BLOCK = 8192;
const MAX_DIRECTORY = 1 << 20;
const NO_FRAGMENT = 0xffffffff;
const COMPRESSORS: Record<number, string> = { 1: 'gzip', 2: 'lzma', 3: 'lzo', 4: 'xz', 5: 'lz4', 6: 'zstd' };

const bad = (message: string) => new SifError('bad-squashfs', `squashfs: ${message}`);

interface Superblock {
  blockSize: number;
  compression: number;
  rootInode: bigint;
  inodeTable: number;
  directoryTable: number;
  fragmentTable: number;
  fragmentCount: number;
}

interface Inode {
  type: number;
  /** Directories: where the listing starts. */
  dirBlock?: number;
  dirOffset?: number;
  dirSize?: number;
  /** Regular files. */
  fileSize?: number;
  blocksStart?: number;
  fragment?: number;
  fragmentOffset?: number;
  blockSizes?: number[];
}

type Decompress = (data: Buffer, maxOutput: number) => Buffer;

function decompressor(id: number): Decompress | null {
  const guard = (fn: (b: Buffer, o: zlib.ZlibOptions) => Buffer): Decompress => (data, maxOutputLength) => {
    try {
      return fn(data, { maxOutputLength });
    } catch (err) {
      throw bad(`cannot decompress a block: ${(err as Error).message}`);
    }
  };
  if (id === 1) return guard(zlib.inflateSync);
  const zstd = (zlib as unknown as { zstdDecompressSync?: (b: Buffer, o: zlib.ZlibOptions) => Buffer }).zstdDecompressSync;
  if (id === 6 && zstd) return guard(zstd);
  return null;
}

export class SquashfsReader {
  private constructor(
    private readonly source: RandomAccessSource,
    private readonly base: number,
    private readonly size: number,
    private readonly sb: Superblock,
    private readonly decompress: Decompress,
  ) {}

  /** Opens the squashfs stored at [base, base + size) of the source. */
  static async open(source: RandomAccessSource, base: number, size: number): Promise<SquashfsReader> {
    if (size < 96) throw bad('too small for a superblock');
    const raw = await source.read(base, 96);
    if (raw.length < 96 || raw.readUInt32LE(0) !== SQUASHFS_MAGIC) throw bad('no hsqs magic');
    if (raw.readUInt16LE(28) !== 4) throw bad(`version ${raw.readUInt16LE(28)} is not 4`);
    const blockSize = raw.readUInt32LE(12);
    if (blockSize < 4096 || blockSize > 1 << 20 || (blockSize & (blockSize - 1)) !== 0) throw bad(`block size ${blockSize} out of range`);
    const offset = (at: number, what: string) => {
      const v = raw.readBigUInt64LE(at);
      if (v >= BigInt(size)) throw bad(`${what} outside the partition`);
      return Number(v);
    };
    const compression = raw.readUInt16LE(20);
    const flags = raw.readUInt16LE(24);
    const fragmentTable = raw.readBigUInt64LE(80);
    const sb: Superblock = {
      blockSize,
      compression,
      rootInode: raw.readBigUInt64LE(32),
      inodeTable: offset(64, 'inode table'),
      directoryTable: offset(72, 'directory table'),
      // Flag 0x0010: no fragments; the table pointer is then ~0.
      fragmentTable: flags & 0x0010 || fragmentTable >= BigInt(size) ? -1 : Number(fragmentTable),
      fragmentCount: raw.readUInt32LE(16),
    };
    const decompress = decompressor(compression) ?? (() => {
      throw bad(`${COMPRESSORS[compression] ?? `compressor ${compression}`} compression is not supported`);
    });
    return new SquashfsReader(source, base, size, sb, decompress);
  }

  private async readRaw(at: number, length: number, what: string): Promise<Buffer> {
    if (at < 0 || length < 0 || at + length > this.size) throw bad(`${what} outside the partition`);
    const b = await this.source.read(this.base + at, length);
    if (b.length !== length) throw bad(`${what} cut short`);
    return b;
  }

  /**
   * `length` bytes of a metadata stream (8 KiB blocks, each with a 2-byte header), starting
   * `offset` bytes into the block at `tableStart + block`.
   */
  private async readMetadata(tableStart: number, block: number, offset: number, length: number): Promise<Buffer> {
    if (offset >= METADATA_BLOCK) throw bad('metadata offset out of range');
    const parts: Buffer[] = [];
    let have = 0;
    let at = tableStart + block;
    const need = offset + length;
    while (have < need) {
      const header = (await this.readRaw(at, 2, 'metadata block')).readUInt16LE(0);
      const stored = header & 0x7fff;
      if (stored === 0) throw bad('empty metadata block');
      const data = await this.readRaw(at + 2, stored, 'metadata block');
      const plain = header & 0x8000 ? data : this.decompress(data, METADATA_BLOCK);
      if (plain.length === 0) throw bad('empty metadata block');
      parts.push(plain);
      have += plain.length;
      // Only a table's last block may be short; this also bounds the number of reads.
      if (plain.length !== METADATA_BLOCK && have < need) throw bad('short metadata block');
      at += 2 + stored;
    }
    return Buffer.concat(parts).subarray(offset, need);
  }

  private async inode(ref: bigint): Promise<Inode> {
    const block = Number(ref >> 16n);
    const offset = Number(ref & 0xffffn);
    const head = await this.readMetadata(this.sb.inodeTable, block, offset, 16);
    const type = head.readUInt16LE(0);
    switch (type) {
      case 1: {
        const b = (await this.readMetadata(this.sb.inodeTable, block, offset, 32)).subarray(16);
        return { type, dirBlock: b.readUInt32LE(0), dirSize: b.readUInt16LE(8), dirOffset: b.readUInt16LE(10) };
      }
      case 8: {
        const b = (await this.readMetadata(this.sb.inodeTable, block, offset, 40)).subarray(16);
        return { type, dirSize: b.readUInt32LE(4), dirBlock: b.readUInt32LE(8), dirOffset: b.readUInt16LE(18) };
      }
      case 2:
      case 9: {
        const fixed = type === 2 ? 32 : 56;
        const b = (await this.readMetadata(this.sb.inodeTable, block, offset, fixed)).subarray(16);
        const f =
          type === 2
            ? { blocksStart: b.readUInt32LE(0), fragment: b.readUInt32LE(4), fragmentOffset: b.readUInt32LE(8), fileSize: b.readUInt32LE(12) }
            : { blocksStart: Number(b.readBigUInt64LE(0)), fileSize: Number(b.readBigUInt64LE(8)), fragment: b.readUInt32LE(28), fragmentOffset: b.readUInt32LE(32) };
        if (f.fileSize > MAX_TEXT_OBJECT) throw new SifError('too-large', `squashfs: file is ${f.fileSize} bytes`);
        const bs = this.sb.blockSize;
        const count = f.fragment === NO_FRAGMENT ? Math.ceil(f.fileSize / bs) : Math.floor(f.fileSize / bs);
        const list = (await this.readMetadata(this.sb.inodeTable, block, offset, fixed + 4 * count)).subarray(fixed);
        const blockSizes = Array.from({ length: count }, (_, i) => list.readUInt32LE(4 * i));
        return { type, ...f, blockSizes };
      }
      default:
        return { type };
    }
  }

  private async list(dir: Inode): Promise<Map<string, bigint>> {
    if (dir.type !== 1 && dir.type !== 8) throw bad('not a directory');
    const length = dir.dirSize! - 3; // the size counts "." and ".." that are not stored
    const entries = new Map<string, bigint>();
    if (length <= 0) return entries;
    if (length > MAX_DIRECTORY) throw new SifError('too-large', `squashfs: directory listing is ${length} bytes`);
    const data = await this.readMetadata(this.sb.directoryTable, dir.dirBlock!, dir.dirOffset!, length);
    let at = 0;
    while (at + 12 <= data.length) {
      const count = data.readUInt32LE(at) + 1;
      const start = data.readUInt32LE(at + 4);
      at += 12;
      if (count > 256) throw bad('directory header counts more than 256 entries');
      for (let i = 0; i < count; i++) {
        if (at + 8 > data.length) throw bad('directory entry cut short');
        const offset = data.readUInt16LE(at);
        const nameLength = data.readUInt16LE(at + 6) + 1;
        if (at + 8 + nameLength > data.length) throw bad('directory entry cut short');
        entries.set(data.subarray(at + 8, at + 8 + nameLength).toString('utf8'), (BigInt(start) << 16n) | BigInt(offset));
        at += 8 + nameLength;
      }
    }
    return entries;
  }

  private async fragmentBlock(index: number): Promise<Buffer> {
    if (this.sb.fragmentTable < 0 || index >= this.sb.fragmentCount) throw bad(`fragment ${index} does not exist`);
    const pointer = (await this.readRaw(this.sb.fragmentTable + 8 * Math.floor(index / 512), 8, 'fragment table')).readBigUInt64LE(0);
    if (pointer >= BigInt(this.size)) throw bad('fragment table outside the partition');
    const entry = await this.readMetadata(Number(pointer), 0, (index % 512) * 16, 16);
    return this.dataBlock(Number(entry.readBigUInt64LE(0)), entry.readUInt32LE(8));
  }

  /** A data block: bit 24 of the size word marks it stored uncompressed. */
  private async dataBlock(at: number, word: number): Promise<Buffer> {
    const stored = word & 0xffffff;
    if (stored > this.sb.blockSize) throw bad('data block larger than the block size');
    const data = await this.readRaw(at, stored, 'data block');
    return word & (1 << 24) ? data : this.decompress(data, this.sb.blockSize);
  }

  /** A regular file's content by absolute path; null if it does not exist. */
  async readFile(path: string): Promise<Buffer | null> {
    let node = await this.inode(this.sb.rootInode);
    for (const name of path.split('/').filter(Boolean)) {
      const ref = (await this.list(node)).get(name);
      if (ref === undefined) return null;
      node = await this.inode(ref);
    }
    if (node.type !== 2 && node.type !== 9) throw bad(`${path} is not a regular file`);
    const parts: Buffer[] = [];
    let at = node.blocksStart!;
    let remaining = node.fileSize!;
    for (const word of node.blockSizes!) {
      const want = Math.min(this.sb.blockSize, remaining);
      // A zero size word is a sparse block of zeros.
      const block = word === 0 ? Buffer.alloc(want) : await this.dataBlock(at, word);
      if (block.length < want) throw bad('data block cut short');
      parts.push(block.subarray(0, want));
      at += word & 0xffffff;
      remaining -= want;
    }
    if (remaining > 0) {
      if (node.fragment === NO_FRAGMENT) throw bad('file shorter than its size');
      const fragment = await this.fragmentBlock(node.fragment!);
      const start = node.fragmentOffset!;
      if (start + remaining > fragment.length) throw bad('fragment cut short');
      parts.push(fragment.subarray(start, start + remaining));
    }
    return Buffer.concat(parts);
  }
}

export const SQUASHFS_LABELS_PATH = '/.singularity.d/labels.json';

/**
 * Labels from `/.singularity.d/labels.json` inside a squashfs partition (what `apptainer
 * inspect` falls back to). Reads a few metadata blocks and the file, never the whole partition.
 * `reason` says why there are none when the file could not be read.
 */
export async function partitionLabels(source: RandomAccessSource, d: SifDescriptor): Promise<{ labels: Record<string, string> | null; reason?: string }> {
  if (d.dataType !== DataType.Partition) return { labels: null, reason: `object ${d.id} is not a partition` };
  const info = partitionInfo(d);
  if (info.fsType !== 1) return { labels: null, reason: `partition ${d.id} is ${info.fsTypeName}, not a plain squashfs` };
  try {
    const fs = await SquashfsReader.open(source, d.offset, d.size);
    const data = await fs.readFile(SQUASHFS_LABELS_PATH);
    if (!data) return { labels: null };
    let json: unknown;
    try {
      json = JSON.parse(data.toString('utf8'));
    } catch {
      return { labels: null, reason: `${SQUASHFS_LABELS_PATH} is not JSON` };
    }
    return { labels: stringMap(json) ?? {} };
  } catch (err) {
    if (err instanceof SifError) return { labels: null, reason: err.message };
    throw err;
  }
}
