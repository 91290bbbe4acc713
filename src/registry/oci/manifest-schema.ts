import { z } from 'zod';
import { parseDigest } from '../../blobs/digest.js';

/** Media types of the two document kinds the registry reads. */
const IMAGE_TYPES = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'];
const INDEX_TYPES = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'];

const strings = z.record(z.string(), z.string());

/** An OCI content descriptor (image-spec descriptor.md); unknown fields are allowed, as the spec says. */
const descriptor = z.looseObject({
  mediaType: z.string().min(1),
  digest: z.string().refine((d) => parseDigest(d) !== null, 'invalid or unsupported digest'),
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: strings.optional(),
  data: z.string().optional(),
  artifactType: z.string().optional(),
  platform: z
    .looseObject({
      architecture: z.string(),
      os: z.string(),
      'os.version': z.string().optional(),
      'os.features': z.array(z.string()).optional(),
      variant: z.string().optional(),
      features: z.array(z.string()).optional(),
    })
    .optional(),
});

const common = {
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  subject: descriptor.optional(),
  annotations: strings.optional(),
};

const imageManifest = z.looseObject({ ...common, config: descriptor, layers: z.array(descriptor) });
const imageIndex = z.looseObject({ ...common, manifests: z.array(descriptor) });
/** Another kind of manifest: whatever of these fields it has must still be well-formed. */
const otherManifest = z.looseObject({
  ...common,
  schemaVersion: z.number().int().optional(),
  config: descriptor.optional(),
  layers: z.array(descriptor).optional(),
  manifests: z.array(descriptor).optional(),
});

export type Descriptor = z.infer<typeof descriptor>;

/** The schema a manifest of `mediaType` must satisfy. */
export function manifestSchema(mediaType: string) {
  if (IMAGE_TYPES.includes(mediaType)) return imageManifest;
  if (INDEX_TYPES.includes(mediaType)) return imageIndex;
  return otherManifest;
}

/** The first problem zod found, as one line naming the field. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const where = issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : 'manifest';
  return `${where}: ${issue.message}`;
}
