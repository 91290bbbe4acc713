import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { download, partFiles, type DownloadSource } from '../../client/download.js';
import { ClientError } from '../../client/errors.js';
import { formatLibraryRef, formatOrasRef } from '../../client/refs.js';
import { CliError } from '../errors.js';
import { openTarget, outputOptions, positiveInt, printJson, progressBar, remoteOption, runtimeArch, say, type OutputOpts } from './client-common.js';

interface PullOpts extends OutputOpts {
  arch?: string;
  remote?: string;
  force?: boolean;
  concurrency: number;
  chunkSize: number;
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/** `shelf pull FILE REF`: concurrent ranged download, resumed after an interruption, hash checked. */
export function registerPull(program: Command): void {
  const cmd = program
    .command('pull <file> <ref>')
    .description('download a SIF image from library://… or oras://… to FILE; an interrupted pull resumes from FILE.shelf-part')
    .option('--arch <arch>', 'architecture to pull (default: this machine’s)')
    .option('-F, --force', 'overwrite FILE if it exists')
    .option('--concurrency <n>', 'ranges downloaded at the same time', positiveInt('--concurrency'), 4)
    .option('--chunk-size <bytes>', 'bytes per range request', positiveInt('--chunk-size'), 8 * 2 ** 20);
  remoteOption(outputOptions(cmd)).action(async (file: string, refText: string, opts: PullOpts) => {
    const target = await openTarget(refText, opts);
    if ((await exists(file)) && !opts.force) throw new CliError(`${file} already exists (use --force to overwrite)`, 1);
    const arch = opts.arch ?? runtimeArch();
    let source: DownloadSource;
    let refShown: string;
    if (target.kind === 'library') {
      const tag = target.ref.tags[0]!;
      refShown = formatLibraryRef(target.ref, [tag]);
      const image = await target.client.getImage(target.ref, tag, arch);
      if (!image) throw new ClientError('not-found', `${refShown} does not exist for ${arch}`);
      if (!image.uploaded) throw new ClientError('not-found', `${refShown}: the image's upload is not finished`);
      source = await target.client.downloadSource(target.ref, tag, arch, image);
    } else {
      refShown = formatOrasRef(target.ref);
      const layer = await target.client.sifLayer(target.ref.repository, target.ref.digest ?? target.ref.tag!, arch);
      source = target.client.downloadSource(target.ref.repository, layer);
    }
    const resuming = await exists(partFiles(file).state);
    const bar = progressBar('Downloading', source.size, opts);
    let result;
    try {
      result = await download(source, { dest: file, concurrency: opts.concurrency, chunkSize: opts.chunkSize, onProgress: (n) => bar.tick(n) });
    } finally {
      bar.stop();
    }
    if (opts.json) {
      printJson({ ref: refShown, file, digest: source.digest, size: source.size, transferred: result.transferred, resumedFrom: result.resumedFrom });
      return;
    }
    if (resuming && result.resumedFrom > 0) say(opts, `Resumed an interrupted download: ${result.resumedFrom} of ${source.size} bytes were already there`);
    say(opts, `Pulled ${refShown} to ${file} (${source.size} bytes, ${source.digest})`);
  });
}
