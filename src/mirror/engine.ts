import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { download } from '../client/download.js';
import { ClientError } from '../client/errors.js';
import { toLibraryHash, type LibraryClient, type LibraryContainer, type LibraryImage } from '../client/library.js';
import type { LibraryRef } from '../client/refs.js';
import type { OciClient } from '../client/oci.js';
import { FileSource, summarizeSif } from '../sif/index.js';
import type { ContainerPath, LibraryEnd, MirrorEnd } from './endpoints.js';
import { destinationPath, formatEnd } from './endpoints.js';
import { copyKeys, type KeyCopyResult } from './keys.js';
import type { MirrorSource, SourceArtifact, SourceContainer, SourceImage } from './source.js';

export interface MirrorOptions {
  source: MirrorSource;
  sourceEnd: MirrorEnd;
  destEnd: LibraryEnd;
  dest: LibraryClient;
  /** The destination's OCI registry, for OCI images that are not SIF (made when first needed). */
  destOci: () => Promise<OciClient>;
  /** The destination's keyserver and the token that may add keys to it. */
  destKeyserver: string;
  destToken: string | null;
  /** Images copied at the same time. */
  jobs: number;
  /** Ranges per image download, parts per image upload. */
  concurrency: number;
  chunkSize: number;
  dryRun: boolean;
  /** Where fetched images wait until they are uploaded (an interrupted mirror resumes from here). */
  workDir: string;
  onEvent?: (event: MirrorEvent) => void;
  signal?: AbortSignal;
}

export type MirrorEvent =
  | { type: 'container'; dest: string; images: number }
  | { type: 'image'; action: 'copy' | 'skip' | 'tag'; image: string; dest: string; arch: string | null; tags: string[]; size: number }
  | { type: 'bytes'; direction: 'down' | 'up'; bytes: number }
  | { type: 'failed'; image: string; dest: string; error: string }
  | { type: 'keys'; result: KeyCopyResult };

export interface ImageOutcome {
  source: string;
  dest: string;
  digest: string;
  arch: string | null;
  tags: string[];
  /** copied: bytes sent; tagged: bytes were there, tags moved; unchanged: nothing to do. */
  action: 'copied' | 'tagged' | 'unchanged' | 'failed';
  error?: string;
  size: number;
}

export interface MirrorSummary {
  source: string;
  destination: string;
  dryRun: boolean;
  containers: number;
  images: { copied: number; tagged: number; unchanged: number; failed: number };
  tagsSet: number;
  bytes: { downloaded: number; uploaded: number; resumed: number };
  keys: KeyCopyResult;
  outcomes: ImageOutcome[];
  /** Kind of the first failure, for the exit code. */
  failureKind: ClientError['kind'] | null;
}

const refOf = ([entity, collection, container]: ContainerPath): LibraryRef => ({ kind: 'library', host: null, entity, collection, container, tags: [] });

/**
 * The same bytes in two containers (or two mirrors in one process, as server jobs are) share
 * one spool file: one copy of a digest at a time.
 */
const busy = new Map<string, Promise<void>>();
async function oneAtATime(digest: string, fn: () => Promise<void>): Promise<void> {
  const before = busy.get(digest) ?? Promise.resolve();
  const mine = before.catch(() => undefined).then(fn);
  busy.set(digest, mine);
  try {
    await mine;
  } finally {
    if (busy.get(digest) === mine) busy.delete(digest);
  }
}

/** Work items taken by `n` workers; unlike `inParallel`, one failure does not stop the others. */
async function pool<T>(items: AsyncIterable<T>, n: number, work: (item: T) => Promise<void>): Promise<void> {
  const running = new Set<Promise<void>>();
  for await (const item of items) {
    const p = work(item).finally(() => running.delete(p));
    running.add(p);
    if (running.size >= n) await Promise.race(running);
  }
  await Promise.all(running);
}

/**
 * Copies every image of the source to a Shelf, keeping bytes, per-architecture tags and
 * descriptions, then the signers' keys. What the destination already holds (same digest, same
 * tags) is not sent again; a fetched image waits in `workDir` until it is uploaded, and
 * downloads and uploads both resume where an interrupted run stopped.
 */
export async function runMirror(opts: MirrorOptions): Promise<MirrorSummary> {
  const summary: MirrorSummary = {
    source: formatEnd(opts.sourceEnd),
    destination: formatEnd(opts.destEnd),
    dryRun: opts.dryRun,
    containers: 0,
    images: { copied: 0, tagged: 0, unchanged: 0, failed: 0 },
    tagsSet: 0,
    bytes: { downloaded: 0, uploaded: 0, resumed: 0 },
    keys: { copied: [], present: [], missing: [] },
    outcomes: [],
    failureKind: null,
  };
  const emit = (e: MirrorEvent) => opts.onEvent?.(e);
  const fingerprints = new Set<string>();
  await mkdir(opts.workDir, { recursive: true });

  /** Container creation and its tag map, shared by the images of one container. */
  const containers = new Map<string, Promise<{ k: LibraryContainer | null; tags: Record<string, Record<string, string>> }>>();
  const destContainer = (dest: ContainerPath, about: SourceContainer['about']) => {
    const key = dest.join('/');
    let p = containers.get(key);
    if (!p) {
      p = (async () => {
        const k = opts.dryRun ? await opts.dest.getContainer(refOf(dest), true) : await opts.dest.ensureContainer(refOf(dest), about);
        return { k, tags: k ? await opts.dest.tags(k.id) : {} };
      })();
      containers.set(key, p);
    }
    return p;
  };

  const copyImage = async (container: SourceContainer, dest: ContainerPath, image: SourceImage): Promise<void> => {
    const destText = dest.join('/');
    const outcome: ImageOutcome = { source: image.label, dest: destText, digest: image.digest, arch: image.arch, tags: image.tags, action: 'unchanged', size: image.size };
    summary.outcomes.push(outcome);
    try {
      opts.signal?.throwIfAborted();
      const ref = refOf(dest);
      const { k, tags } = await destContainer(dest, container.about);
      const hash = toLibraryHash(image.digest);
      let existing: LibraryImage | null = k ? await opts.dest.getImage(ref, hash, null) : null;
      for (const f of image.fingerprints) fingerprints.add(f);
      let arch = image.arch ?? existing?.arch ?? null;
      const sendBytes = !existing?.uploaded;
      if (sendBytes && !opts.dryRun) await oneAtATime(image.digest, async () => {
        const spool = path.join(opts.workDir, `${image.digest.replace(/^sha256:/, '')}.sif`);
        if (!(await exists(spool))) {
          const source = await image.bytes();
          if (source.digest !== image.digest || source.size !== image.size) throw new ClientError('integrity', `${image.label}: the source describes ${image.digest} differently on download`);
          const got = await download(source, { dest: spool, concurrency: opts.concurrency, chunkSize: opts.chunkSize, onProgress: (n) => emit({ type: 'bytes', direction: 'down', bytes: n }) });
          summary.bytes.downloaded += got.transferred;
          summary.bytes.resumed += got.resumedFrom;
        }
        const facts = await readFacts(spool);
        arch ??= facts.arch;
        for (const f of facts.fingerprints) fingerprints.add(f);
        existing ??= await opts.dest.createImage(k!.id, hash, image.description);
        await opts.dest.upload(existing, spool, image.size, {
          concurrency: opts.concurrency,
          onProgress: (n) => emit({ type: 'bytes', direction: 'up', bytes: n }),
          onResume: (n) => (summary.bytes.resumed += n),
        });
        summary.bytes.uploaded += image.size;
        await rm(spool, { force: true });
        existing = (await opts.dest.getImage(ref, hash, null)) ?? existing;
      });
      for (const f of existing?.fingerprints ?? []) fingerprints.add(f);
      outcome.arch = arch;
      const archKey = arch ?? '';
      const moves = image.tags.filter((t) => !existing || tags[archKey]?.[t] !== existing.id);
      if (!opts.dryRun) {
        for (const tag of moves) {
          await opts.dest.setTag(k!.id, tag, existing!.id, arch);
          (tags[archKey] ??= {})[tag] = existing!.id;
        }
      }
      summary.tagsSet += moves.length;
      outcome.action = sendBytes ? 'copied' : moves.length ? 'tagged' : 'unchanged';
      summary.images[outcome.action]++;
      emit({ type: 'image', action: sendBytes ? 'copy' : moves.length ? 'tag' : 'skip', image: image.label, dest: destText, arch, tags: image.tags, size: image.size });
    } catch (err) {
      failed(outcome, err);
    }
  };

  const failed = (outcome: ImageOutcome, err: unknown) => {
    outcome.action = 'failed';
    outcome.error = err instanceof Error ? err.message : String(err);
    summary.images.failed++;
    summary.failureKind ??= err instanceof ClientError ? err.kind : 'server';
    emit({ type: 'failed', image: outcome.source, dest: outcome.dest, error: outcome.error });
  };

  /** An OCI tag that is not a SIF image, copied with its digests into the destination's OCI registry. */
  const copyArtifactTag = async (container: SourceContainer, dest: ContainerPath, artifact: SourceArtifact): Promise<void> => {
    const destText = dest.join('/');
    const outcome: ImageOutcome = { source: artifact.label, dest: destText, digest: '', arch: null, tags: [artifact.tag], action: 'unchanged', size: 0 };
    summary.outcomes.push(outcome);
    try {
      opts.signal?.throwIfAborted();
      if (!opts.dryRun) await destContainer(dest, container.about);
      const r = await artifact.copy({
        dest: await opts.destOci(),
        destRepo: destText,
        dryRun: opts.dryRun,
        workDir: opts.workDir,
        chunkSize: opts.chunkSize,
        concurrency: opts.concurrency,
        onBytes: (direction, bytes) => emit({ type: 'bytes', direction, bytes }),
      });
      Object.assign(outcome, { digest: r.digest, size: r.bytes, action: r.action });
      summary.images[r.action]++;
      if (r.action === 'copied') {
        summary.tagsSet++;
        if (!opts.dryRun) {
          summary.bytes.downloaded += r.bytes;
          summary.bytes.uploaded += r.bytes;
        }
      }
      emit({ type: 'image', action: r.action === 'copied' ? 'copy' : 'skip', image: artifact.label, dest: destText, arch: null, tags: [artifact.tag], size: r.bytes });
    } catch (err) {
      failed(outcome, err);
    }
  };

  type Work = { container: SourceContainer; dest: ContainerPath } & ({ image: SourceImage } | { artifact: SourceArtifact });
  async function* work(): AsyncIterable<Work> {
    for await (const container of opts.source.containers()) {
      summary.containers++;
      const dest = destinationPath(opts.sourceEnd, opts.destEnd, container.path);
      emit({ type: 'container', dest: dest.join('/'), images: container.images.length + (container.artifacts?.length ?? 0) });
      for (const image of container.images) yield { container, dest, image };
      for (const artifact of container.artifacts ?? []) yield { container, dest, artifact };
    }
  }
  await pool(work(), Math.max(1, opts.jobs), (w) => ('image' in w ? copyImage(w.container, w.dest, w.image) : copyArtifactTag(w.container, w.dest, w.artifact)));

  // The images are there whatever happens to the keys: a key failure is reported, not fatal.
  try {
    summary.keys = await copyKeys([...fingerprints], await opts.source.keyserver(), opts.destKeyserver, opts.destToken, opts.dryRun);
  } catch (err) {
    summary.keys = { copied: [], present: [], missing: [...fingerprints], error: err instanceof Error ? err.message : String(err) };
  }
  emit({ type: 'keys', result: summary.keys });
  return summary;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** Architecture and PGP signer fingerprints of a fetched SIF. */
async function readFacts(file: string): Promise<{ arch: string | null; fingerprints: string[] }> {
  const source = await FileSource.open(file);
  try {
    const s = await summarizeSif(source);
    return { arch: s.arch, fingerprints: s.signatures.map((sig) => sig.fingerprint).filter((f): f is string => !!f) };
  } catch {
    throw new ClientError('usage', `${path.basename(file)} is not a SIF image`);
  } finally {
    await source.close();
  }
}
