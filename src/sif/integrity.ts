import { createHash } from 'node:crypto';
import type { SifDescriptor } from './descriptors.js';
import { SifError } from './errors.js';
import { groupObjects, relativeId, type SifImage } from './image.js';
import type { RandomAccessSource } from './source.js';

/** Objects are hashed in reads of this size: partitions may be many gigabytes. */
const STREAM_CHUNK = 4 << 20;
const DIGEST_ALGORITHMS: Record<string, string> = {
  sha224: 'sha224', sha256: 'sha256', sha384: 'sha384', sha512: 'sha512', sha512_224: 'sha512-224', sha512_256: 'sha512-256',
};

/** The image metadata a signature covers (sylabs/sif integrity, version 1). */
export interface ImageMetadata {
  version: number;
  header: { digest: string };
  objects: Array<{ relativeId: number; descriptorDigest: string; objectDigest: string }>;
}

/**
 * Object digests already computed in one pass over an image, so that many signatures over the
 * same objects hash each object once per algorithm, not once per signature.
 */
export type DigestCache = Map<string, string>;

const digestOf = (algorithm: string, ...parts: Buffer[]): string => {
  const h = createHash(DIGEST_ALGORITHMS[algorithm] ?? algorithm);
  for (const p of parts) h.update(p);
  return `${algorithm}:${h.digest('hex')}`;
};

/** Launch script, magic, version and UUID: what stays the same when objects are appended. */
export const headerDigest = (image: SifImage, algorithm = 'sha256'): string =>
  digestOf(algorithm, image.header.raw.subarray(0, 45), image.header.raw.subarray(48, 64));

/** Type, used flag, relative ID, link, size, times, owner IDs, name and extra — not ID, group or offset. */
export function descriptorDigest(image: SifImage, d: SifDescriptor, algorithm = 'sha256'): string {
  const rel = Buffer.alloc(4);
  rel.writeUInt32LE(relativeId(image, d));
  const r = d.raw;
  return digestOf(algorithm, r.subarray(0, 5), rel, r.subarray(13, 17), r.subarray(25, 33), r.subarray(41, 49), r.subarray(57, 585));
}

/** Hex digest of the data of objects one after the other, streamed in bounded reads. */
export async function hashObjects(source: RandomAccessSource, objects: SifDescriptor[], nodeAlgorithm: string): Promise<string> {
  const h = createHash(nodeAlgorithm);
  for (const d of objects) {
    for (let at = 0; at < d.size; at += STREAM_CHUNK) {
      const chunk = await source.read(d.offset + at, Math.min(STREAM_CHUNK, d.size - at));
      if (chunk.length === 0) throw new SifError('truncated', `object ${d.id} ends early`);
      h.update(chunk);
    }
  }
  return h.digest('hex');
}

/** `<algorithm>:<hex>` of an object's data. */
export async function objectDigest(source: RandomAccessSource, d: SifDescriptor, algorithm = 'sha256', cache?: DigestCache): Promise<string> {
  const node = DIGEST_ALGORITHMS[algorithm];
  if (!node) throw new SifError('bad-signature', `unsupported digest algorithm ${algorithm}`);
  const key = `${d.id}:${algorithm}`;
  const cached = cache?.get(key);
  if (cached) return cached;
  const digest = `${algorithm}:${await hashObjects(source, [d], node)}`;
  cache?.set(key, digest);
  return digest;
}

/** The metadata JSON to sign for a group, byte for byte as Go's `json.Marshal` writes it. */
export async function groupMetadata(source: RandomAccessSource, image: SifImage, group: number): Promise<string> {
  const objects = [];
  for (const d of groupObjects(image, group)) {
    objects.push({
      relativeId: relativeId(image, d),
      descriptorDigest: descriptorDigest(image, d),
      objectDigest: await objectDigest(source, d),
    });
  }
  const metadata: ImageMetadata = { version: 1, header: { digest: headerDigest(image) }, objects };
  return JSON.stringify(metadata);
}

const algorithmOf = (digest: unknown): string => {
  const alg = typeof digest === 'string' ? (digest.split(':')[0] ?? '') : '';
  if (!DIGEST_ALGORITHMS[alg]) throw new SifError('bad-signature', `unsupported digest ${String(digest).slice(0, 80)}`);
  return alg;
};

function parseMetadata(text: string): ImageMetadata {
  let metadata: ImageMetadata;
  try {
    metadata = JSON.parse(text) as ImageMetadata;
  } catch {
    throw new SifError('bad-signature', 'signed metadata is not JSON');
  }
  if (metadata?.version !== 1 || typeof metadata.header?.digest !== 'string' || !Array.isArray(metadata.objects)) {
    throw new SifError('bad-signature', 'signed metadata has an unknown format');
  }
  for (const o of metadata.objects) {
    if (!o || !Number.isSafeInteger(o.relativeId) || o.relativeId < 0 || typeof o.descriptorDigest !== 'string' || typeof o.objectDigest !== 'string') {
      throw new SifError('bad-signature', 'signed metadata has an unknown format');
    }
  }
  return metadata;
}

/**
 * Checks signed metadata against the image: the header, and exactly the objects of the group
 * (none missing, none added), each descriptor and data. Throws naming the first bad object;
 * returns the IDs of the objects it covers.
 */
export async function checkMetadata(
  source: RandomAccessSource,
  image: SifImage,
  group: number,
  text: string,
  /** Only this object of the group (a signature linked to one object); default: the whole group. */
  only?: number,
  cache?: DigestCache,
): Promise<number[]> {
  const metadata = parseMetadata(text);
  if (headerDigest(image, algorithmOf(metadata.header.digest)) !== metadata.header.digest) {
    throw new SifError('bad-signature', 'header integrity compromised');
  }
  const members = groupObjects(image, group);
  if (members.length === 0) throw new SifError('bad-signature', `object group ${group} has no objects`);
  // Relative IDs count from the group's smallest ID, signatures in the group included.
  const minId = Math.min(...members.map((o) => o.id - relativeId(image, o)));
  const objects = only === undefined ? members : members.filter((o) => o.id === only);
  const byId = new Map(objects.map((o) => [o.id, o]));
  const signedIds = metadata.objects.map((o) => o.relativeId + minId).sort((a, b) => a - b);
  const actualIds = objects.map((o) => o.id);
  if (signedIds.join(',') !== actualIds.join(',')) {
    throw new SifError('bad-signature', `object group ${group} changed: signed objects ${signedIds.join(',').slice(0, 200)}, image has ${actualIds.join(',')}`);
  }
  for (const entry of metadata.objects) {
    const d = byId.get(entry.relativeId + minId)!;
    if (descriptorDigest(image, d, algorithmOf(entry.descriptorDigest)) !== entry.descriptorDigest) {
      throw new SifError('bad-signature', `data object descriptor integrity compromised: ${d.id}`);
    }
    if ((await objectDigest(source, d, algorithmOf(entry.objectDigest), cache)) !== entry.objectDigest) {
      throw new SifError('bad-signature', `data object integrity compromised: ${d.id}`);
    }
  }
  return actualIds;
}
