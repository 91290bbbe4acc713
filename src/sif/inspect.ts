import { DataType } from './constants.js';
import { SifError } from './errors.js';
import { isSignature, readSif, relativeId, type SifHeader, type SifImage } from './format.js';
import { descriptorDigest, headerDigest, objectDigest } from './integrity.js';
import { isTextObject, partitionInfo, readObject, signatureInfo, type PartitionInfo, type SignatureInfo } from './objects.js';
import type { RandomAccessSource } from './source.js';

export interface ObjectReport {
  index: number;
  id: number;
  dataType: number;
  dataTypeHex: string;
  dataTypeName: string;
  rawGroupIdHex: string;
  groupId: number;
  rawLinkedIdHex: string;
  linkedId: number;
  linkIsGroup: boolean;
  offset: number;
  size: number;
  sizeWithPadding: number;
  createdAt: number;
  modifiedAt: number;
  name: string;
  extraHexTrimmed: string;
  descriptorIntegrityDigest: string;
  relativeId: number;
  /** Only when asked for: reads the whole object. */
  objectSha256?: string;
  text?: string;
  partition?: PartitionInfo & { firstBytesHex: string; squashfsMagic: boolean };
  signature?: SignatureInfo & { signedMetadata?: unknown };
}

export interface InspectReport {
  fileSize: number;
  header: Omit<SifHeader, 'raw'>;
  headerIntegrityDigest: string;
  descriptors: ObjectReport[];
  primarySystemPartitionId: number;
  primaryArch: string;
  deffile: string | null;
  labels: Record<string, string>;
  signerFingerprints: string[];
  hasSbom: boolean;
  encrypted: boolean;
}

const hex32 = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/**
 * Everything the header, the descriptors and the small objects say. Partition data is read
 * only for its first 16 bytes, and for `objectDigests` (which reads every object whole).
 */
export async function inspectSif(source: RandomAccessSource, opts: { objectDigests?: boolean } = {}): Promise<InspectReport> {
  const image = await readSif(source);
  const descriptors: ObjectReport[] = [];
  for (const d of [...image.descriptors].sort((a, b) => a.index - b.index)) {
    const report: ObjectReport = {
      index: d.index,
      id: d.id,
      dataType: d.dataType,
      dataTypeHex: `0x${d.dataType.toString(16)}`,
      dataTypeName: d.dataTypeName,
      rawGroupIdHex: hex32(d.rawGroupId),
      groupId: d.groupId,
      rawLinkedIdHex: hex32(d.rawLinkedId),
      linkedId: d.linkedId,
      linkIsGroup: d.linkIsGroup,
      offset: d.offset,
      size: d.size,
      sizeWithPadding: d.sizeWithPadding,
      createdAt: d.createdAt,
      modifiedAt: d.modifiedAt,
      name: d.name,
      extraHexTrimmed: d.extra.toString('hex').replace(/(00)+$/, ''),
      descriptorIntegrityDigest: descriptorDigest(image, d),
      relativeId: relativeId(image, d),
    };
    if (opts.objectDigests) report.objectSha256 = (await objectDigest(source, d)).slice('sha256:'.length);
    if (isTextObject(d)) report.text = (await readObject(source, d)).toString('utf8');
    if (d.dataType === DataType.Partition) {
      const first = await source.read(d.offset, Math.min(16, d.size));
      report.partition = { ...partitionInfo(d), firstBytesHex: first.toString('hex'), squashfsMagic: first.subarray(0, 4).toString('latin1') === 'hsqs' };
    }
    if (isSignature(d)) {
      const info = await signatureInfo(source, d);
      report.signature = info;
      if (info.format !== 'pgp-clearsign-legacy' && info.signedText) {
        try {
          report.signature = { ...info, signedMetadata: JSON.parse(info.signedText) as unknown };
        } catch {
          // not JSON: reported as text only
        }
      }
    }
    descriptors.push(report);
  }
  const primary = descriptors.find((d) => d.partition?.isPrimarySystem);
  const deffileObject = descriptors.find((d) => d.dataType === DataType.Deffile);
  const { raw: _raw, ...header } = image.header;
  return {
    fileSize: image.fileSize,
    header,
    headerIntegrityDigest: headerDigest(image),
    descriptors,
    primarySystemPartitionId: primary?.id ?? 0,
    primaryArch: primary?.partition?.arch ?? '',
    deffile: deffileObject?.text ?? null,
    labels: labelsOf(descriptors),
    signerFingerprints: [...new Set(descriptors.map((d) => d.signature?.fingerprint).filter((f): f is string => !!f))],
    hasSbom: descriptors.some((d) => d.dataType === DataType.SBOM),
    encrypted: descriptors.some((d) => d.partition?.encrypted || d.dataType === DataType.CryptoMessage),
  };
}

/**
 * Labels from `inspect-metadata.json` (what `apptainer build` writes), else from a JSON labels
 * object. Labels only inside the squashfs (`/.singularity.d/labels.json`) are not read.
 */
function labelsOf(descriptors: ObjectReport[]): Record<string, string> {
  const stringMap = (v: unknown): Record<string, string> | null =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => typeof x === 'string')) as Record<string, string>
      : null;
  for (const d of descriptors) {
    if (d.dataType === DataType.GenericJSON && d.name === 'inspect-metadata.json' && d.text) {
      try {
        const meta = JSON.parse(d.text) as { data?: { attributes?: { labels?: unknown } } };
        const labels = stringMap(meta.data?.attributes?.labels);
        if (labels) return labels;
      } catch {
        // malformed metadata: fall through
      }
    }
  }
  for (const d of descriptors) {
    if (d.dataType === DataType.Labels && d.text) {
      try {
        const labels = stringMap(JSON.parse(d.text));
        if (labels) return labels;
      } catch {
        // malformed labels: none
      }
    }
  }
  return {};
}

export type { SifImage };
export { SifError };
