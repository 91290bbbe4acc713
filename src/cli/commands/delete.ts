import type { Command } from 'commander';
import { ClientError } from '../../client/errors.js';
import { formatLibraryRef, formatOrasRef, libraryPath } from '../../client/refs.js';
import { confirm } from '../confirm.js';
import { openTarget, outputOptions, printJson, remoteOption, runtimeArch, say, type OutputOpts } from './client-common.js';

interface DeleteOpts extends OutputOpts {
  arch?: string;
  remote?: string;
  yes?: boolean;
}

const note = (line: string) => process.stderr.write(`${line}\n`);

/**
 * `shelf delete REF`: the image a Library tag points to for one architecture (with every tag of
 * that image for it), or the ORAS manifest a tag points to. It says what goes before it goes.
 */
export function registerDelete(program: Command): void {
  const cmd = program
    .command('delete <ref>')
    .description('delete an image with all its tags: library://… one architecture’s image, oras://… the manifest the tag points to (shelf untag removes one tag only)')
    .option('--arch <arch>', 'architecture of the image to delete (library://; default: this machine’s)')
    .option('-y, --yes', 'do not ask for confirmation (needed when not on a terminal)');
  remoteOption(outputOptions(cmd)).action(async (refText: string, opts: DeleteOpts) => {
    const target = await openTarget(refText, opts);
    if (target.kind === 'oras') {
      const shown = formatOrasRef(target.ref);
      const { digest } = await target.client.getManifest(target.ref.repository, target.ref.digest ?? target.ref.tag!);
      if (!opts.quiet && !opts.json) note(`This deletes manifest ${digest} of oras://${target.ref.host}/${target.ref.repository} and every tag pointing at it.`);
      await confirm(`Delete ${shown}?`, opts, `${shown}: not deleted`);
      await target.client.deleteManifest(target.ref.repository, digest);
      if (opts.json) printJson({ ref: shown, manifest: digest, deleted: true });
      else say(opts, `Deleted ${shown} (${digest})`);
      return;
    }
    const arch = opts.arch ?? runtimeArch();
    const tag = target.ref.tags[0]!;
    const shown = formatLibraryRef(target.ref, [tag]);
    const image = await target.client.getImage(target.ref, tag, arch);
    if (!image) throw new ClientError('not-found', `${shown} does not exist for ${arch}`);
    const archTags = (await target.client.tags(image.container))[arch] ?? {};
    const tags = Object.entries(archTags).filter(([, id]) => id === image.id).map(([t]) => t).sort();
    const what = `image ${image.hash} (${arch}) of library://${libraryPath(target.ref)}, with ${tags.length ? `its ${arch} tags ${tags.join(', ')}` : 'no tags'}`;
    if (!opts.quiet && !opts.json) {
      note(`This deletes ${what}.`);
      if (tags.length > 1 && !tag.startsWith('sha256.')) note(`To remove only the tag ${tag}: shelf untag ${shown} --arch ${arch}`);
    }
    await confirm(`Delete ${shown} (${arch})?`, opts, `${shown} (${arch}): not deleted`);
    await target.client.deleteImage(target.ref, tag, arch);
    if (opts.json) printJson({ ref: shown, arch, image: image.id, digest: image.hash, tags, deleted: true });
    else say(opts, `Deleted ${shown} (${arch}; tags ${tags.join(', ') || 'none'})`);
  });
}
