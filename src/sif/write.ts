import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { sha256File } from '../client/file-digest.js';
import { ARCHES, DESCRIPTOR_SIZE, DataType, GROUP_FLAG, HEADER_SIZE, MAGIC, PART_PRIMARY_SYSTEM } from './constants.js';
import { SifError } from './errors.js';
import { signSif, type SigningKey } from './sign.js';

/** The layout `apptainer build` (sylabs/apptainer sif library defaults) creates. */
export const DEFAULT_DESCRIPTOR_OFFSET = 4096;
export const DEFAULT_DESCRIPTOR_SLOTS = 48;
export const PARTITION_ALIGNMENT = 4096;
export const LAUNCH_SCRIPT = '#!/usr/bin/env run-singularity\n';
/** The object group a build puts everything into (`sif.DefaultObjectGroup`). */
const IMAGE_GROUP = 1;
const FS_SQUASHFS = 1;

export interface SifJsonObject {
  name: string;
  data: Buffer;
}

export interface SifWriteInput {
  /** The full definition file (Def.FILE); omitted when absent. */
  deffile?: string | Buffer;
  /** JSON.Generic objects; written sorted by name, as Apptainer does. */
  json?: SifJsonObject[];
  /** A squashfs image file to become the primary system partition. */
  squashfs: string;
  /** Go architecture name (amd64, arm64, …). */
  arch: string;
  /** 16 raw UUID bytes; random (v4) when absent. */
  uuid?: Buffer;
  createdAt?: Date;
  /** Sign every object group afterwards (one signature object per group). */
  sign?: SigningKey;
}

export interface SifWriteResult {
  size: number;
  /** sha256 of the finished file, `sha256:<hex>` (after signing, when signed). */
  digest: string;
}

interface PlannedObject {
  dataType: number;
  name: string;
  extra: Buffer;
  offset: number;
  size: number;
  padding: number;
  bytes?: Buffer;
}

export function archCode(arch: string): string {
  const entry = Object.entries(ARCHES).find(([code, name]) => name === arch && code !== '00');
  if (!entry) throw new SifError('bad-header', `unknown architecture ${JSON.stringify(arch)}`);
  return entry[0];
}

function randomUuid(): Buffer {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

function putText(buf: Buffer, text: string, at: number, size: number): void {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length >= size) throw new SifError('bad-descriptor', `text field too long (${bytes.length} bytes, at most ${size - 1})`);
  bytes.copy(buf, at);
}

/**
 * Writes a new SIF image the way `apptainer build` lays it out: Def.FILE, the JSON objects by
 * name, then the squashfs partition (PrimSys, aligned to 4096) in object group 1. The partition
 * streams from its file; the result appears at `out` only once complete (written beside it and
 * renamed), so no half-written image is ever visible.
 */
export async function writeSif(out: string, input: SifWriteInput): Promise<SifWriteResult> {
  const code = archCode(input.arch);
  const partSize = (await stat(input.squashfs)).size;
  const created = BigInt(Math.floor((input.createdAt ?? new Date()).getTime() / 1000));
  const dataOffset = DEFAULT_DESCRIPTOR_OFFSET + DEFAULT_DESCRIPTOR_SLOTS * DESCRIPTOR_SIZE;

  const objects: PlannedObject[] = [];
  let cursor = dataOffset;
  const add = (o: Omit<PlannedObject, 'offset' | 'padding'>, align: number) => {
    const offset = Math.ceil(cursor / align) * align;
    objects.push({ ...o, offset, padding: offset - cursor });
    cursor = offset + o.size;
  };
  if (input.deffile !== undefined) {
    const bytes = Buffer.isBuffer(input.deffile) ? input.deffile : Buffer.from(input.deffile, 'utf8');
    add({ dataType: DataType.Deffile, name: '', extra: Buffer.alloc(0), size: bytes.length, bytes }, 1);
  }
  for (const j of [...(input.json ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    add({ dataType: DataType.GenericJSON, name: j.name, extra: Buffer.alloc(0), size: j.data.length, bytes: j.data }, 1);
  }
  const partExtra = Buffer.alloc(11);
  partExtra.writeInt32LE(FS_SQUASHFS, 0);
  partExtra.writeInt32LE(PART_PRIMARY_SYSTEM, 4);
  partExtra.write(code, 8, 'ascii');
  add({ dataType: DataType.Partition, name: '', extra: partExtra, size: partSize }, PARTITION_ALIGNMENT);

  const header = Buffer.alloc(HEADER_SIZE);
  header.write(LAUNCH_SCRIPT, 0, 'ascii');
  header.write(MAGIC, 32, 'ascii');
  header.write('01', 42, 'ascii');
  header.write(code, 45, 'ascii');
  const uuid = input.uuid ?? randomUuid();
  if (uuid.length !== 16) throw new SifError('bad-header', 'an image UUID has 16 bytes');
  uuid.copy(header, 48);
  header.writeBigInt64LE(created, 64);
  header.writeBigInt64LE(created, 72);
  header.writeBigInt64LE(BigInt(DEFAULT_DESCRIPTOR_SLOTS - objects.length), 80);
  header.writeBigInt64LE(BigInt(DEFAULT_DESCRIPTOR_SLOTS), 88);
  header.writeBigInt64LE(BigInt(DEFAULT_DESCRIPTOR_OFFSET), 96);
  header.writeBigInt64LE(BigInt(DEFAULT_DESCRIPTOR_SLOTS * DESCRIPTOR_SIZE), 104);
  header.writeBigInt64LE(BigInt(dataOffset), 112);
  header.writeBigInt64LE(BigInt(cursor - dataOffset), 120);

  const table = Buffer.alloc(DEFAULT_DESCRIPTOR_SLOTS * DESCRIPTOR_SIZE);
  objects.forEach((o, i) => {
    const r = table.subarray(i * DESCRIPTOR_SIZE, (i + 1) * DESCRIPTOR_SIZE);
    r.writeInt32LE(o.dataType, 0);
    r[4] = 1;
    r.writeUInt32LE(i + 1, 5);
    r.writeUInt32LE((GROUP_FLAG | IMAGE_GROUP) >>> 0, 9);
    r.writeUInt32LE(0, 13);
    r.writeBigInt64LE(BigInt(o.offset), 17);
    r.writeBigInt64LE(BigInt(o.size), 25);
    r.writeBigInt64LE(BigInt(o.size + o.padding), 33);
    r.writeBigInt64LE(created, 41);
    r.writeBigInt64LE(created, 49);
    putText(r, o.name, 73, 128);
    o.extra.copy(r, 201);
  });

  const tmp = `${out}.part-${randomBytes(4).toString('hex')}`;
  const hash = createHash('sha256');
  let written = 0;
  const file = createWriteStream(tmp, { mode: 0o755 });
  const sink = async (chunk: Buffer) => {
    hash.update(chunk);
    written += chunk.length;
    if (!file.write(chunk)) await new Promise<void>((resolve) => file.once('drain', resolve));
  };
  try {
    await sink(header);
    await sink(Buffer.alloc(DEFAULT_DESCRIPTOR_OFFSET - HEADER_SIZE));
    await sink(table);
    for (const o of objects) {
      if (o.padding) await sink(Buffer.alloc(o.padding));
      if (o.bytes) {
        await sink(o.bytes);
        continue;
      }
      const before = written;
      await pipeline(
        createReadStream(input.squashfs),
        new Writable({ write: (chunk: Buffer, _enc, done) => void sink(chunk).then(() => done(), done) }),
      );
      if (written - before !== o.size) throw new SifError('io', `${input.squashfs} changed size while it was copied`);
    }
    file.end();
    await finished(file);
    let result: SifWriteResult = { size: written, digest: `sha256:${hash.digest('hex')}` };
    if (input.sign) {
      await signSif(tmp, input.sign, input.createdAt ?? new Date());
      result = { size: (await stat(tmp)).size, digest: await sha256File(tmp) };
    }
    await rename(tmp, out);
    return result;
  } catch (err) {
    file.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
}
