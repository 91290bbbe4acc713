import type { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/store.js';
import { SifError, summarizeSif, type RandomAccessSource } from '../../sif/index.js';
import { RegistryError } from '../errors.js';
import { withoutNul } from '../text.js';

/** What the registry keeps of a SIF, read from its header, descriptors and small objects. */
export interface SifFacts {
  arch: string | null;
  deffile: string | null;
  labels: Record<string, string>;
  fingerprints: string[];
  encrypted: boolean;
  info: unknown;
}

/** Random access over any stored object that can be opened by byte range. */
export class RangeSource implements RandomAccessSource {
  constructor(
    readonly size: number,
    private readonly openRange: (range: ByteRange) => Promise<Readable>,
  ) {}

  async read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(offset + length, this.size) - 1;
    if (end < offset) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    for await (const chunk of await this.openRange({ start: offset, end })) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
}

export async function readSifFacts(source: RandomAccessSource): Promise<SifFacts> {
  let summary;
  try {
    summary = await summarizeSif(source);
  } catch (err) {
    if (err instanceof SifError) throw new RegistryError('not-sif', `not a valid SIF image: ${err.message}`);
    throw err;
  }
  const fingerprints = [
    ...new Set(summary.signatures.map((s) => s.fingerprint).filter((f): f is string => !!f)),
  ];
  const signatures = summary.signatures.map((s) => ({ id: s.id, format: s.format, fingerprint: s.fingerprint, state: 'unknown-key' as const }));
  // A definition file or label may hold NUL bytes, which PostgreSQL text cannot: dropped on both databases.
  return withoutNul({
    arch: summary.arch && summary.arch !== 'unknown' ? summary.arch : null,
    deffile: summary.deffile,
    labels: summary.labels,
    fingerprints,
    encrypted: summary.encrypted,
    info: { ...summary, verification: { status: signatures.length ? 'pending' : 'unsigned', signatures } },
  });
}
