import { inspectSif } from './inspect.js';
import type { SignatureFormat } from './objects.js';
import type { RandomAccessSource } from './source.js';

/** What a registry keeps of a SIF, read without touching partition data. */
export interface SifSummary {
  /** Go arch name of the primary system partition, else of the header; null if unknown. */
  arch: string | null;
  headerArch: string;
  primaryPartitionId: number | null;
  deffile: string | null;
  labels: Record<string, string>;
  signatures: Array<{
    id: number;
    format: SignatureFormat | null;
    fingerprint: string | null;
    issuerKeyId: string | null;
    dsseKeyIds: string[];
    linkedGroup: number | null;
    linkedObject: number | null;
  }>;
  hasSbom: boolean;
  encrypted: boolean;
  uuid: string;
  createdAt: number;
  modifiedAt: number;
}

export async function summarizeSif(source: RandomAccessSource): Promise<SifSummary> {
  const r = await inspectSif(source);
  const arch = r.primaryArch || r.header.arch;
  return {
    arch: arch && arch !== 'unknown' ? arch : null,
    headerArch: r.header.arch,
    primaryPartitionId: r.primarySystemPartitionId || null,
    deffile: r.deffile,
    labels: r.labels,
    signatures: r.descriptors
      .filter((d) => d.signature)
      .map((d) => ({
        id: d.id,
        format: d.signature!.format,
        fingerprint: d.signature!.fingerprint,
        issuerKeyId: d.signature!.pgpIssuerKeyId,
        dsseKeyIds: d.signature!.dsseKeyIds,
        linkedGroup: d.linkIsGroup ? d.linkedId : null,
        linkedObject: d.linkIsGroup || d.linkedId === 0 ? null : d.linkedId,
      })),
    hasSbom: r.hasSbom,
    encrypted: r.encrypted,
    uuid: r.header.uuid,
    createdAt: r.header.createdAt,
    modifiedAt: r.header.modifiedAt,
  };
}
