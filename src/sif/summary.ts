import { DataType } from './constants.js';
import { isSignature, readSif } from './image.js';
import { inspectMetadata, isInspectMetadata, objectLabels } from './labels.js';
import { isEncrypted, partitionInfo, primaryPartition, readSmallText } from './objects.js';
import { signatureInfo, type SignatureFormat } from './signatures.js';
import type { RandomAccessSource } from './source.js';

export interface SifSummary {
  /** Go arch name of the primary system partition, else of the header; null if unknown. */
  arch: string | null;
  /** The header's arch name ('unknown' when it has none). */
  headerArch: string;
  primaryPartitionId: number | null;
  deffile: string | null;
  labels: Record<string, string>;
  signatures: Array<{
    id: number;
    /** null: the object is neither a DSSE envelope nor a clear-signed message (or too large to read). */
    format: SignatureFormat | null;
    /** 40 upper-case hex from the descriptor (PGP); null for DSSE. */
    fingerprint: string | null;
    /** 16 upper-case hex from the PGP signature packet. */
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
  /** What was skipped (objects over the 1 MiB text limit), for logs; empty normally. */
  warnings: string[];
}

/**
 * What a registry keeps of a SIF. Reads the header, the descriptor table, the first definition
 * file, `inspect-metadata.json` or a JSON labels object, and the signature objects — each at
 * most 1 MiB — and never partition data, so it costs the same for 10 KiB and 10 GiB images.
 * Labels only inside the squashfs are not looked for here (see `partitionLabels`).
 */
export async function summarizeSif(source: RandomAccessSource): Promise<SifSummary> {
  const image = await readSif(source);
  const warnings: string[] = [];
  const primary = primaryPartition(image.descriptors);
  const primaryArch = primary ? partitionInfo(primary).arch : 'unknown';
  const arch = primaryArch !== 'unknown' ? primaryArch : image.header.arch;

  let deffile: string | null = null;
  const deffileObject = image.descriptors.find((d) => d.dataType === DataType.Deffile);
  if (deffileObject) {
    deffile = await readSmallText(source, deffileObject);
    if (deffile === null) warnings.push(`definition file (object ${deffileObject.id}, ${deffileObject.size} bytes) too large to read`);
  } else {
    const metadataObject = image.descriptors.find(isInspectMetadata);
    if (metadataObject) deffile = inspectMetadata(await readSmallText(source, metadataObject)).deffile;
  }

  const signatures: SifSummary['signatures'] = [];
  for (const d of image.descriptors.filter(isSignature)) {
    const info = await signatureInfo(source, d);
    if (info.unreadable) warnings.push(info.unreadable);
    signatures.push({
      id: d.id,
      format: info.format,
      fingerprint: info.fingerprint,
      issuerKeyId: info.pgpIssuerKeyId,
      dsseKeyIds: info.dsseKeyIds,
      linkedGroup: d.linkIsGroup ? d.linkedId : null,
      linkedObject: d.linkIsGroup || d.linkedId === 0 ? null : d.linkedId,
    });
  }

  return {
    arch: arch !== 'unknown' ? arch : null,
    headerArch: image.header.arch,
    primaryPartitionId: primary?.id ?? null,
    deffile,
    labels: (await objectLabels(source, image.descriptors))?.labels ?? {},
    signatures,
    hasSbom: image.descriptors.some((d) => d.dataType === DataType.SBOM),
    encrypted: isEncrypted(image.descriptors),
    uuid: image.header.uuid,
    createdAt: image.header.createdAt,
    modifiedAt: image.header.modifiedAt,
    warnings,
  };
}
