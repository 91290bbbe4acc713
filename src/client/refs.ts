import { ClientError } from './errors.js';

/** `library://[HOST/]entity/collection/container[:tag[,tag…]]`; `library://[collection/]container` is under `default`. */
export interface LibraryRef {
  kind: 'library';
  host: string | null;
  entity: string;
  collection: string;
  container: string;
  tags: string[];
}

/** `oras://HOST[:PORT]/repository[:tag|@digest]` */
export interface OrasRef {
  kind: 'oras';
  host: string;
  repository: string;
  tag: string | null;
  digest: string | null;
}

export type ImageRef = LibraryRef | OrasRef;

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/i;
const DEFAULT_NAMESPACE = 'default';
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

const bad = (ref: string, why: string) => new ClientError('usage', `bad image reference ${JSON.stringify(ref)}: ${why}`);

export function parseRef(text: string): ImageRef {
  if (text.startsWith('library:')) return parseLibraryRef(text);
  if (text.startsWith('oras://')) return parseOrasRef(text);
  throw bad(text, 'it must start with library:// or oras://');
}

export function parseLibraryRef(text: string): LibraryRef {
  const rest = text.replace(/^library:(\/\/)?/, '');
  const colon = rest.indexOf(':', rest.lastIndexOf('/') + 1);
  const pathPart = colon < 0 ? rest : rest.slice(0, colon);
  const tagPart = colon < 0 ? '' : rest.slice(colon + 1);
  const parts = pathPart.replace(/^\/+/, '').split('/');
  let host: string | null = null;
  if (parts.length === 4) host = parts.shift()!;
  if (parts.length > 3 || parts.some((p) => p === '')) throw bad(text, 'expected library://[entity/[collection/]]container[:tag]');
  // Short refs, as the server maps them: a missing entity or collection is `default`.
  while (parts.length < 3) parts.unshift(DEFAULT_NAMESPACE);
  for (const p of parts) if (!NAME.test(p)) throw bad(text, `${JSON.stringify(p)} is not a valid name`);
  const tags = colon < 0 ? ['latest'] : tagPart.split(',');
  for (const t of tags) if (!TAG.test(t) && !/^sha256\.[a-f0-9]{64}$/.test(t)) throw bad(text, `${JSON.stringify(t)} is not a valid tag`);
  return { kind: 'library', host, entity: parts[0]!, collection: parts[1]!, container: parts[2]!, tags };
}

export function parseOrasRef(text: string): OrasRef {
  const rest = text.slice('oras://'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) throw bad(text, 'expected oras://HOST[:PORT]/repository[:tag]');
  const host = rest.slice(0, slash);
  let name = rest.slice(slash + 1);
  let digest: string | null = null;
  let tag: string | null = null;
  const at = name.indexOf('@');
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(text, `${JSON.stringify(digest)} is not a sha256 digest`);
  }
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!TAG.test(tag)) throw bad(text, `${JSON.stringify(tag)} is not a valid tag`);
  }
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(name)) {
    throw bad(text, `${JSON.stringify(name)} is not a valid repository name`);
  }
  if (!/^[A-Za-z0-9.-]+(:\d+)?$/.test(host) && !/^\[[0-9a-f:]+\](:\d+)?$/i.test(host)) throw bad(text, `${JSON.stringify(host)} is not a host`);
  return { kind: 'oras', host, repository: name, tag: tag ?? (digest ? null : 'latest'), digest };
}

export const libraryPath = (r: LibraryRef): string => `${r.entity}/${r.collection}/${r.container}`;
export const formatLibraryRef = (r: LibraryRef, tags = r.tags): string => `library://${libraryPath(r)}:${tags.join(',')}`;
export const formatOrasRef = (r: OrasRef): string => `oras://${r.host}/${r.repository}${r.digest ? `@${r.digest}` : `:${r.tag}`}`;

/** Loopback registries speak plain HTTP, as Apptainer's and oras-go's clients assume. */
export function registryBaseUrl(host: string, insecure = false): string {
  const hostname = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const plain = insecure || hostname === 'localhost' || hostname === '::1' || /^127\./.test(hostname);
  return `${plain ? 'http' : 'https'}://${host}`;
}
