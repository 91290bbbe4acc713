import { DataType } from './constants.js';
import type { SifDescriptor } from './descriptors.js';
import { hex32 } from './fields.js';
import type { SifHeader } from './header.js';
import { isSignature, readSif, relativeId, type SifImage } from './image.js';
import { descriptorDigest, headerDigest, objectDigest } from './integrity.js';
import { inspectMetadata, isInspectMetadata, objectLabels } from './labels.js';
import {
  cryptoMessageInfo,
  isEncrypted,
  isTextObject,
  partitionInfo,
  primaryPartition,
  readSmallText,
  sbomFormat,
  type CryptoMessageInfo,
  type PartitionInfo,
} from './objects.js';
import { signatureInfo, type SignatureInfo } from './signatures.js';
import type { RandomAccessSource } from './source.js';
import { partitionLabels } from './squashfs.js';

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
  /** Only with `objectDigests`: reads the whole object. */
  objectSha256?: string;
  /** Deffile and JSON objects up to the text size limit. */
  text?: string;
  partition?: PartitionInfo & { firstBytesHex?: string; squashfsMagic?: boolean };
  signature?: SignatureInfo & { signedMetadata?: unknown };
  sbomFormat?: string;
  cryptoMessage?: CryptoMessageInfo;
}

export interface InspectReport {
  fileSize: number;
  header: Omit<SifHeader, 'raw'>;
  headerIntegrityDigest: string;
  descriptors: ObjectReport[];
  /** 0 when there is no primary system partition. */
  primarySystemPartitionId: number;
  /** '' when there is no primary system partition. */
  primaryArch: string;
  deffile: string | null;
  labels: Record<string, string>;
  /** Where the labels came from. */
  labelsSource: 'inspect-metadata' | 'labels-object' | 'squashfs' | 'none';
  signerFingerprints: string[];
  hasSbom: boolean;
  encrypted: boolean;
  /** What was not read and why (objects over the text size limit, unreadable squashfs). */
  warnings: string[];
}

export interface InspectOptions {
  /** Hash every object (reads all partition data). */
  objectDigests?: boolean;
  /** Read the first 16 bytes of each partition (default true). */
  peekPartitions?: boolean;
  /** Without labels in SIF objects, read `/.singularity.d/labels.json` from the primary squashfs (default false). */
  squashfsLabels?: boolean;
}

/**
 * Everything the header, the descriptors and the small objects say. Partition data is read
 * only for its first 16 bytes, for `squashfsLabels` (a few metadata blocks), and for
 * `objectDigests` (every object whole, streamed).
 */
export async function inspectSif(source: RandomAccessSource, opts: InspectOptions = {}): Promise<InspectReport> {
  const image = await readSif(source);
  const warnings: string[] = [];
  const descriptors: ObjectReport[] = [];
  for (const d of image.descriptors) {
    const report = describe(image, d);
    if (opts.objectDigests) report.objectSha256 = (await objectDigest(source, d)).slice('sha256:'.length);
    if (isTextObject(d)) {
      const text = await readSmallText(source, d);
      if (text === null) warnings.push(`object ${d.id} (${d.dataTypeName}, ${d.size} bytes) is too large to show`);
      else report.text = text;
    }
    if (d.dataType === DataType.Partition) {
      report.partition = partitionInfo(d);
      if (opts.peekPartitions ?? true) {
        const first = await source.read(d.offset, Math.min(16, d.size));
        report.partition.firstBytesHex = first.toString('hex');
        report.partition.squashfsMagic = first.subarray(0, 4).toString('latin1') === 'hsqs';
      }
    }
    if (d.dataType === DataType.SBOM) report.sbomFormat = sbomFormat(d);
    if (d.dataType === DataType.CryptoMessage) report.cryptoMessage = cryptoMessageInfo(d);
    if (isSignature(d)) {
      const info = await signatureInfo(source, d);
      if (info.unreadable) warnings.push(info.unreadable);
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
  const primary = primaryPartition(image.descriptors);
  const deffileObject = descriptors.find((d) => d.dataType === DataType.Deffile);
  const metadataObject = descriptors.find((d) => isInspectMetadata(image.descriptors.find((o) => o.id === d.id)!));
  const fromObjects = await objectLabels(source, image.descriptors);
  let labels = fromObjects?.labels ?? null;
  let labelsSource: InspectReport['labelsSource'] = fromObjects?.from ?? 'none';
  if (!labels && opts.squashfsLabels && primary) {
    const found = await partitionLabels(source, primary);
    if (found.labels) {
      labels = found.labels;
      labelsSource = 'squashfs';
    } else if (found.reason) warnings.push(`labels in the squashfs not read: ${found.reason}`);
  }
  const { raw: _raw, ...header } = image.header;
  return {
    fileSize: image.fileSize,
    header,
    headerIntegrityDigest: headerDigest(image),
    descriptors,
    primarySystemPartitionId: primary?.id ?? 0,
    primaryArch: primary ? partitionInfo(primary).arch : '',
    deffile: deffileObject?.text ?? inspectMetadata(metadataObject?.text ?? null).deffile,
    labels: labels ?? {},
    labelsSource,
    signerFingerprints: [...new Set(descriptors.map((d) => d.signature?.fingerprint).filter((f): f is string => !!f))],
    hasSbom: image.descriptors.some((d) => d.dataType === DataType.SBOM),
    encrypted: isEncrypted(image.descriptors),
    warnings,
  };
}

function describe(image: SifImage, d: SifDescriptor): ObjectReport {
  return {
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
}
