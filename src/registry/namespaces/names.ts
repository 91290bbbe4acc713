import { RegistryError, invalid } from '../errors.js';

/** The name a missing entity or collection segment of a short Library ref stands for. */
export const DEFAULT_NAMESPACE = 'default';

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const MAX_NAME = 128;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const ARCH = /^[a-z0-9_]{1,32}$/;

/** Entity, collection and container names: lower case, as the Library client requires on push. */
export function checkName(kind: string, name: string): string {
  if (name.length === 0) throw invalid(`${kind} name must not be empty`);
  if (name.length > MAX_NAME) throw invalid(`${kind} name is longer than ${MAX_NAME} characters`);
  if (!NAME.test(name)) {
    throw invalid(
      `invalid ${kind} name ${JSON.stringify(name)}: use lower-case letters and digits, separated by single '.', '_' or '-'`,
    );
  }
  return name;
}

export function checkTag(tag: string): string {
  if (!TAG.test(tag) || isImageHash(tag)) {
    throw invalid(`invalid tag ${JSON.stringify(tag)}: up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -`);
  }
  return tag;
}

export function checkArch(arch: string): string {
  if (!ARCH.test(arch)) throw invalid(`invalid architecture ${JSON.stringify(arch)}`);
  return arch;
}

export interface ContainerPath {
  entity: string;
  collection: string;
  container: string;
}

export interface LibraryRef extends ContainerPath {
  /** A tag, or null when the ref names an image by hash. */
  tag: string | null;
  /** `sha256:<hex>` when the ref names an image by hash. */
  digest: string | null;
}

/**
 * Parses the `{ref}` of `v1/images/{ref}` and `v1/imagefile/{ref}`: one to three path segments
 * (`k`, `c/k`, `e/c/k`; empty leading segments as in `//c/k`), then `:tag` or `:sha256.<hex>`.
 * Missing entity or collection segments map to `default`.
 */
export function parseLibraryRef(ref: string): LibraryRef {
  const colon = ref.lastIndexOf(':');
  const pathPart = colon >= 0 ? ref.slice(0, colon) : ref;
  const tagPart = colon >= 0 ? ref.slice(colon + 1) : 'latest';
  const path = parseContainerPath(pathPart);
  const digest = parseImageHash(tagPart);
  if (digest) return { ...path, tag: null, digest };
  return { ...path, tag: checkTag(tagPart), digest: null };
}

export function parseContainerPath(text: string): ContainerPath {
  const segments = text.replace(/^\/+/, '').split('/');
  if (segments.length > 3) throw invalid(`invalid container path ${JSON.stringify(text)}: at most entity/collection/container`);
  while (segments.length < 3) segments.unshift('');
  const [entity, collection, container] = segments.map((s) => s || DEFAULT_NAMESPACE) as [string, string, string];
  if (segments[2] === '') throw invalid('container name must not be empty');
  return {
    entity: checkName('entity', entity),
    collection: checkName('collection', collection),
    container: checkName('container', container),
  };
}

const IMAGE_HASH = /^sha256\.([0-9a-f]{64})$/;

export const isImageHash = (text: string): boolean => IMAGE_HASH.test(text);

/** `sha256.<hex>` (the Library's image hash) → `sha256:<hex>`; anything else → null. */
export function parseImageHash(text: string): string | null {
  const m = IMAGE_HASH.exec(text);
  return m ? `sha256:${m[1]}` : null;
}

/** Accepts `sha256.<hex>`, `sha256:<hex>` or bare hex, as clients send all three. */
export function parseAnySha256(text: string): string | null {
  const m = /^(?:sha256[.:])?([0-9a-fA-F]{64})$/.exec(text.trim());
  return m ? `sha256:${m[1]!.toLowerCase()}` : null;
}

export const toImageHash = (digest: string): string => digest.replace(/^sha256:/, 'sha256.');

const OCI_NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;

/**
 * The one rule between OCI repository names and Library containers:
 * `k` is `default/default/k`, `e/k` is `e/default/k` (OCI names start with their owner), and
 * `e/c/k` is itself. Longer names are refused, as are separators the Library cannot hold (`__`, `--`).
 */
export function parseRepositoryName(name: string): ContainerPath {
  if (name.length > 255 || !OCI_NAME.test(name)) throw new RegistryError('invalid', `invalid repository name ${JSON.stringify(name)}`, 'name');
  const parts = name.split('/');
  if (parts.length > 3) {
    throw new RegistryError('invalid', `repository names have at most three parts (entity/collection/container): ${name}`, 'name');
  }
  const [entity, collection, container] =
    parts.length === 3 ? parts : parts.length === 2 ? [parts[0]!, DEFAULT_NAMESPACE, parts[1]!] : [DEFAULT_NAMESPACE, DEFAULT_NAMESPACE, parts[0]!];
  try {
    return {
      entity: checkName('entity', entity!),
      collection: checkName('collection', collection!),
      container: checkName('container', container!),
    };
  } catch (err) {
    throw new RegistryError('invalid', (err as Error).message, 'name');
  }
}

/** Whether text has the form of an OCI repository name (which `parseRepositoryName` may still refuse). */
export const isOciRepositoryName = (text: string): boolean => text.length <= 255 && OCI_NAME.test(text);

export const repositoryNameOf = (p: ContainerPath): string => `${p.entity}/${p.collection}/${p.container}`;

const OCI_TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export const isOciTag = (text: string): boolean => OCI_TAG.test(text);
