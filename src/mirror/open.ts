import { ClientError } from '../client/errors.js';
import type { RegistryCredentials } from '../client/config.js';
import { discoverServices, LibraryClient } from '../client/library.js';
import { OciClient } from '../client/oci.js';
import { registryBaseUrl } from '../client/refs.js';
import { RegistryAuth } from '../client/registry-auth.js';
import { containerPathOfRepository, destinationPath, parseMirrorEnd, type LibraryEnd, type MirrorEnd } from './endpoints.js';
import type { MirrorOptions } from './engine.js';
import { LibrarySource } from './library-source.js';
import { OciSource } from './oci-source.js';
import type { MirrorSource } from './source.js';

export interface MirrorRequest {
  source: string;
  destination: string;
  /** Base URLs to use instead of those the hosts imply (a remote's URL, the server itself). */
  sourceUrl?: string;
  destUrl?: string;
  sourceToken: string | null;
  sourceCredentials: RegistryCredentials | null;
  sourceKeyserver?: string | null;
  destToken: string | null;
}

export type MirrorSettings = Pick<MirrorOptions, 'jobs' | 'concurrency' | 'chunkSize' | 'dryRun' | 'workDir' | 'onEvent' | 'signal'>;

/** Both ends of a mirror opened from their texts: the source reader and the destination client. */
export async function openMirror(req: MirrorRequest, settings: MirrorSettings): Promise<MirrorOptions> {
  const sourceEnd = parseMirrorEnd(req.source);
  const destEnd = parseMirrorEnd(req.destination);
  if (destEnd.kind !== 'library') throw new ClientError('usage', 'the destination is a Shelf: library://HOST[/ENTITY[/COLLECTION[/CONTAINER]]]');
  if (destEnd.tag) throw new ClientError('usage', 'the destination names no tag: the source tags are kept');
  const source = await openSource(sourceEnd, destEnd, req);
  const destBase = req.destUrl ?? registryBaseUrl(destEnd.host);
  const dest = await LibraryClient.discover(destBase, req.destToken);
  const services = await discoverServices(destBase).catch(() => null);
  let destOci: Promise<OciClient> | null = null;
  return {
    ...settings,
    source,
    sourceEnd,
    destEnd,
    dest,
    // Shelf's registry takes a username with the API token as its password.
    destOci: () =>
      (destOci ??= (async () => {
        const who = req.destToken ? await dest.tokenStatus() : null;
        const creds = req.destToken ? { username: who?.username ?? 'token', password: req.destToken } : null;
        // Credentials from the first request: the destination can tell the caller before any challenge.
        const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : null;
        return new OciClient(destBase, new RegistryAuth(destEnd.host, creds, basic));
      })()),
    destKeyserver: (services?.keystoreAPI?.uri ?? destBase).replace(/\/+$/, ''),
    destToken: req.destToken,
  };
}

async function openSource(end: MirrorEnd, dest: LibraryEnd, req: MirrorRequest): Promise<MirrorSource> {
  if (end.kind === 'library') return LibrarySource.open(end, req.sourceUrl ?? registryBaseUrl(end.host), req.sourceToken);
  const path = dest.path.length ? destinationPath(end, dest, ['', '', '']) : containerPathOfRepository(end.repository);
  const client = new OciClient(req.sourceUrl ?? registryBaseUrl(end.host), new RegistryAuth(end.host, req.sourceCredentials));
  return new OciSource(end, client, path, req.sourceKeyserver?.replace(/\/+$/, '') ?? null);
}
