import { ClientError } from '../client/errors.js';

/**
 * The two ends of a mirror. Unlike push and pull references, a mirror's library:// URLs always
 * start with the server's host, and may stop at any level of the namespace:
 * `library://HOST/ENTITY[/COLLECTION[/CONTAINER[:TAG]]]`.
 */
export interface LibraryEnd {
  kind: 'library';
  host: string;
  /** entity, collection, container: 0 to 3 of them. */
  path: string[];
  tag: string | null;
}

/** `oras://HOST/REPO[:TAG]` (SIF images stored the ORAS way) or `docker://HOST/REPO[:TAG]` (OCI images, OCI-SIF). */
export interface OciEnd {
  kind: 'oras' | 'docker';
  host: string;
  repository: string;
  tag: string | null;
}

export type MirrorEnd = LibraryEnd | OciEnd;

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::\d+)?$/;
const REPO = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

const bad = (text: string, why: string) => new ClientError('usage', `bad mirror location ${JSON.stringify(text)}: ${why}`);

export function parseMirrorEnd(text: string): MirrorEnd {
  const m = /^(library|oras|docker):\/\/([^/]+)(?:\/(.*))?$/.exec(text);
  if (!m) throw bad(text, 'expected library://HOST/ENTITY[/COLLECTION[/CONTAINER[:TAG]]], oras://HOST/REPO[:TAG] or docker://HOST/REPO[:TAG]');
  const [, scheme, host, rest = ''] = m as unknown as [string, 'library' | 'oras' | 'docker', string, string | undefined];
  if (!HOST.test(host)) throw bad(text, `${JSON.stringify(host)} is not a host`);
  const trimmed = rest.replace(/\/+$/, '');
  const colon = trimmed.indexOf(':', trimmed.lastIndexOf('/') + 1);
  const name = colon < 0 ? trimmed : trimmed.slice(0, colon);
  const tag = colon < 0 ? null : trimmed.slice(colon + 1);
  if (tag !== null && !TAG.test(tag)) throw bad(text, `${JSON.stringify(tag)} is not a valid tag`);
  if (scheme === 'library') {
    const path = name ? name.split('/') : [];
    if (path.length > 3) throw bad(text, 'a library path has at most entity/collection/container');
    for (const p of path) if (!NAME.test(p)) throw bad(text, `${JSON.stringify(p)} is not a valid name`);
    if (tag !== null && path.length !== 3) throw bad(text, 'a tag needs the full entity/collection/container path');
    return { kind: 'library', host, path, tag };
  }
  if (!REPO.test(name)) throw bad(text, `${JSON.stringify(name)} is not a valid repository name`);
  return { kind: scheme, host, repository: name, tag };
}

export const formatEnd = (end: MirrorEnd): string =>
  end.kind === 'library'
    ? `library://${[end.host, ...end.path].join('/')}${end.tag ? `:${end.tag}` : ''}`
    : `${end.kind}://${end.host}/${end.repository}${end.tag ? `:${end.tag}` : ''}`;

/** entity/collection/container of a container. */
export type ContainerPath = [string, string, string];

/**
 * Where a source container lands: the destination path replaces as many leading segments as
 * the source named (a collection mirrored to `library://dst/e2/c2` keeps its container names);
 * a destination with no path keeps the source's names.
 */
export function destinationPath(source: MirrorEnd, dest: LibraryEnd, sourcePath: ContainerPath): ContainerPath {
  if (dest.path.length === 0) return sourcePath;
  const depth = source.kind === 'library' ? source.path.length : 3;
  if (dest.path.length !== depth) {
    throw new ClientError(
      'usage',
      source.kind === 'library'
        ? `the destination must name as many levels as the source (${depth}: ${['entity', 'collection', 'container'].slice(0, depth).join('/')}), or none`
        : 'an OCI source needs a destination container: library://HOST/ENTITY/COLLECTION/CONTAINER',
    );
  }
  return [...dest.path, ...sourcePath.slice(depth)] as ContainerPath;
}

/** The Library path of an OCI repository when the destination names none: it must have three parts. */
export function containerPathOfRepository(repository: string): ContainerPath {
  const parts = repository.split('/');
  if (parts.length !== 3 || !parts.every((p) => NAME.test(p))) {
    throw new ClientError('usage', `repository ${repository} does not map to entity/collection/container: give the destination container`);
  }
  return parts as ContainerPath;
}
