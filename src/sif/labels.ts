import { DataType } from './constants.js';
import type { SifDescriptor } from './descriptors.js';
import { readSmallText } from './objects.js';
import type { RandomAccessSource } from './source.js';

export const INSPECT_METADATA = 'inspect-metadata.json';

/** A JSON object's string values (labels are a flat string map; anything else is dropped). */
export function stringMap(v: unknown): Record<string, string> | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (typeof x === 'string') out[k] = x;
  return out;
}

const parseJson = (text: string | null): unknown => {
  if (text === null) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
};

export interface InspectMetadata {
  labels: Record<string, string> | null;
  deffile: string | null;
}

/** `data.attributes` of Apptainer's `inspect-metadata.json`: labels and the definition file. */
export function inspectMetadata(text: string | null): InspectMetadata {
  const attributes = (parseJson(text) as { data?: { attributes?: { labels?: unknown; deffile?: unknown } } } | undefined)?.data?.attributes;
  return {
    labels: stringMap(attributes?.labels),
    deffile: typeof attributes?.deffile === 'string' ? attributes.deffile : null,
  };
}

export const isInspectMetadata = (d: SifDescriptor): boolean => d.dataType === DataType.GenericJSON && d.name === INSPECT_METADATA;

/**
 * Labels from `inspect-metadata.json` (what `apptainer build` writes), else from a JSON labels
 * object; null when neither holds any (then only the squashfs may, see squashfs.ts).
 * Reads only those small objects.
 */
export async function objectLabels(
  source: RandomAccessSource,
  descriptors: SifDescriptor[],
): Promise<{ labels: Record<string, string>; from: 'inspect-metadata' | 'labels-object' } | null> {
  for (const d of descriptors.filter(isInspectMetadata)) {
    const labels = inspectMetadata(await readSmallText(source, d)).labels;
    if (labels) return { labels, from: 'inspect-metadata' };
  }
  for (const d of descriptors.filter((o) => o.dataType === DataType.Labels)) {
    const labels = stringMap(parseJson(await readSmallText(source, d)));
    if (labels) return { labels, from: 'labels-object' };
  }
  return null;
}
