import path from 'node:path';
import type { Command } from 'commander';
import { sha256File } from '../../client/file-digest.js';
import { MEDIA } from '../../client/oci.js';
import { formatLibraryRef, formatOrasRef } from '../../client/refs.js';
import { toLibraryHash } from '../../client/library.js';
import { fileSize, openTarget, outputOptions, positiveInt, printJson, progressBar, remoteOption, say, sifArch, type LibraryTarget, type OrasTarget, type OutputOpts } from './client-common.js';

interface PushOpts extends OutputOpts {
  description?: string;
  arch?: string;
  remote?: string;
  concurrency: number;
  chunkSize: number;
}

interface PushFacts {
  file: string;
  size: number;
  digest: string;
  arch: string | null;
}

/** `shelf push FILE REF`: library:// (v2 multipart, parts in parallel) or oras:// (chunked blob upload); both resume. */
export function registerPush(program: Command): void {
  const cmd = program
    .command('push <file> <ref>')
    .description('upload a SIF image to library://[HOST/]ENTITY/COLLECTION/CONTAINER[:TAG[,TAG…]] or oras://HOST[:PORT]/REPO[:TAG]; an interrupted push resumes')
    .option('-D, --description <text>', 'description of the image')
    .option('--arch <arch>', "architecture to tag the image with (default: the SIF's own)")
    .option('--concurrency <n>', 'parts uploaded at the same time (library://)', positiveInt('--concurrency'), 4)
    .option('--chunk-size <bytes>', 'bytes per request of a chunked oras:// upload', positiveInt('--chunk-size'), 16 * 2 ** 20);
  remoteOption(outputOptions(cmd)).action(async (file: string, refText: string, opts: PushOpts) => {
    const size = await fileSize(file);
    const arch = opts.arch ?? (await sifArch(file));
    const target = await openTarget(refText, opts);
    const digest = await sha256File(file);
    const facts: PushFacts = { file, size, digest, arch };
    if (target.kind === 'library') await pushLibrary(target, facts, opts);
    else await pushOras(target, facts, opts);
  });
}

async function pushLibrary(target: LibraryTarget, facts: PushFacts, opts: PushOpts): Promise<void> {
  const { client, ref } = target;
  const container = await client.ensureContainer(ref);
  const hash = toLibraryHash(facts.digest);
  let image = await client.getImage(ref, hash, facts.arch);
  image ??= await client.createImage(container.id, hash, opts.description ?? '');
  let resumedFrom = 0;
  let result: { quota?: { quotaTotal: number; quotaUsage: number }; containerUrl?: string } = {};
  if (!image.uploaded) {
    const bar = progressBar('Uploading', facts.size, opts);
    try {
      result = await client.upload(image, facts.file, facts.size, {
        concurrency: opts.concurrency,
        onResume: (n) => (resumedFrom = n),
        onProgress: (n) => bar.tick(n),
      });
    } finally {
      bar.stop();
    }
  } else {
    say(opts, `${path.basename(facts.file)} is already on the server; not uploaded again`);
  }
  for (const tag of ref.tags) await client.setTag(container.id, tag, image.id, facts.arch);
  const refText = formatLibraryRef(ref);
  if (opts.json) {
    printJson({ ref: refText, imageId: image.id, digest: facts.digest, size: facts.size, arch: facts.arch, uploaded: !image.uploaded, resumedFrom, quota: result.quota ?? null });
    return;
  }
  if (resumedFrom > 0) say(opts, `Resumed an interrupted upload: ${resumedFrom} of ${facts.size} bytes were already there`);
  if (result.quota) {
    const q = result.quota;
    say(opts, `Library storage: using ${(q.quotaUsage / 2 ** 20).toFixed(2)} MiB out of ${q.quotaTotal ? `${(q.quotaTotal / 2 ** 20).toFixed(2)} MiB` : 'unlimited'} quota`);
  }
  say(opts, `Pushed ${facts.file} to ${refText} (${facts.arch ?? 'unknown arch'}, ${facts.size} bytes)`);
}

async function pushOras(target: OrasTarget, facts: PushFacts, opts: PushOpts): Promise<void> {
  const { client, ref } = target;
  let resumedFrom = 0;
  const bar = progressBar('Uploading', facts.size, opts);
  try {
    await client.pushFile(ref.repository, facts.file, facts.digest, facts.size, {
      chunkSize: opts.chunkSize,
      onResume: (n) => (resumedFrom = n),
      onProgress: (n) => bar.tick(n),
    });
  } finally {
    bar.stop();
  }
  const config = Buffer.from('{}');
  const configDigest = await client.pushBytes(ref.repository, config, MEDIA.sifConfig);
  const annotations: Record<string, string> = { 'org.opencontainers.image.title': path.basename(facts.file) };
  if (opts.description) annotations['org.opencontainers.image.description'] = opts.description;
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.sifConfig, digest: configDigest, size: config.length },
    layers: [{ mediaType: MEDIA.sifLayer, digest: facts.digest, size: facts.size, annotations }],
  };
  const reference = ref.tag ?? ref.digest!;
  const manifestDigest = await client.putManifest(ref.repository, reference, Buffer.from(JSON.stringify(manifest)));
  const refText = formatOrasRef(ref);
  if (opts.json) {
    printJson({ ref: refText, digest: facts.digest, manifest: manifestDigest, size: facts.size, arch: facts.arch, resumedFrom });
    return;
  }
  if (resumedFrom > 0) say(opts, `Resumed an interrupted upload: ${resumedFrom} of ${facts.size} bytes were already there`);
  say(opts, `Pushed ${facts.file} to ${refText} (${facts.size} bytes, manifest ${manifestDigest})`);
}
