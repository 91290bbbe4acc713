import type { Command } from 'commander';
import { ClientError } from '../../client/errors.js';
import { formatLibraryRef, libraryPath, parseRef } from '../../client/refs.js';
import { libraryOnly, openTarget, outputOptions, printJson, remoteOption, runtimeArch, say, type OutputOpts } from './client-common.js';

interface TagOpts extends OutputOpts {
  arch?: string;
  remote?: string;
}

/** `shelf tags REF` and `shelf tag SRC DST`. */
export function registerTags(program: Command): void {
  remoteOption(outputOptions(program.command('tags <ref>').description('list the tags of a container (library://) or repository (oras://)'))).action(
    async (refText: string, opts: TagOpts) => {
      const target = await openTarget(refText, opts);
      if (target.kind === 'oras') {
        const tags = (await target.client.tags(target.ref.repository)).sort();
        if (opts.json) printJson({ repository: target.ref.repository, tags });
        else for (const t of tags) say(opts, t);
        return;
      }
      const container = await target.client.getContainer(target.ref);
      const archTags = await target.client.tags(container!.id);
      if (opts.json) {
        printJson({ container: libraryPath(target.ref), tags: archTags });
        return;
      }
      const rows: string[][] = [];
      for (const [arch, tags] of Object.entries(archTags)) for (const [tag, id] of Object.entries(tags)) rows.push([tag, arch || '-', id]);
      rows.sort((a, b) => a[0]!.localeCompare(b[0]!) || a[1]!.localeCompare(b[1]!));
      const w = Math.max(3, ...rows.map((r) => r[0]!.length));
      say(opts, `${'TAG'.padEnd(w)}  ${'ARCH'.padEnd(8)}  IMAGE`);
      for (const r of rows) say(opts, `${r[0]!.padEnd(w)}  ${r[1]!.padEnd(8)}  ${r[2]}`);
    },
  );

  remoteOption(
    outputOptions(
      program
        .command('tag <src> <dst>')
        .description('give the image SRC another tag: DST is a tag name or a reference to the same container/repository')
        .option('--arch <arch>', 'architecture of the image to tag (library://; default: this machine’s)'),
    ),
  ).action(async (srcText: string, dst: string, opts: TagOpts) => {
    const target = await openTarget(srcText, opts);
    if (target.kind === 'oras') {
      const src = target.ref;
      let tag = dst;
      if (dst.includes('://')) {
        const d = parseRef(dst);
        if (d.kind !== 'oras' || d.host !== src.host || d.repository !== src.repository || !d.tag) {
          throw new ClientError('usage', `${dst}: retag within ${src.host}/${src.repository} only, with a tag`);
        }
        tag = d.tag;
      }
      const { bytes, mediaType } = await target.client.getManifest(src.repository, src.digest ?? src.tag!);
      const digest = await target.client.putManifest(src.repository, tag, bytes, mediaType);
      if (opts.json) printJson({ repository: src.repository, tag, manifest: digest });
      else say(opts, `Tagged oras://${src.host}/${src.repository}:${tag} (${digest})`);
      return;
    }
    libraryOnly(target, 'tag');
    const src = target.ref;
    let tags = dst.split(',');
    if (dst.includes(':') || dst.includes('/')) {
      const d = parseRef(dst.startsWith('library:') ? dst : `library://${dst}`);
      if (d.kind !== 'library' || libraryPath(d) !== libraryPath(src)) throw new ClientError('usage', `${dst}: retag within ${libraryPath(src)} only`);
      tags = d.tags;
    }
    const arch = opts.arch ?? runtimeArch();
    const image = await target.client.getImage(src, src.tags[0]!, arch);
    if (!image) throw new ClientError('not-found', `${formatLibraryRef(src, [src.tags[0]!])} does not exist for ${arch}`);
    for (const t of tags) await target.client.setTag(image.container, t, image.id, arch);
    if (opts.json) printJson({ container: libraryPath(src), tags, imageId: image.id, arch });
    else say(opts, `Tagged ${formatLibraryRef(src, tags)} (${arch}, image ${image.id})`);
  });
}
