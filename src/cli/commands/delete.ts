import type { Command } from 'commander';
import { formatLibraryRef, formatOrasRef } from '../../client/refs.js';
import { openTarget, outputOptions, printJson, remoteOption, runtimeArch, say, type OutputOpts } from './client-common.js';

/** `shelf delete REF`: one architecture of a Library tag's image, or an ORAS manifest. */
export function registerDelete(program: Command): void {
  const cmd = program
    .command('delete <ref>')
    .description('delete an image: library://… for one architecture, oras://… the manifest the tag points to')
    .option('--arch <arch>', 'architecture of the image to delete (library://; default: this machine’s)');
  remoteOption(outputOptions(cmd)).action(async (refText: string, opts: OutputOpts & { arch?: string; remote?: string }) => {
    const target = await openTarget(refText, opts);
    if (target.kind === 'oras') {
      const { digest } = await target.client.getManifest(target.ref.repository, target.ref.digest ?? target.ref.tag!);
      await target.client.deleteManifest(target.ref.repository, digest);
      if (opts.json) printJson({ ref: formatOrasRef(target.ref), manifest: digest, deleted: true });
      else say(opts, `Deleted ${formatOrasRef(target.ref)} (${digest})`);
      return;
    }
    const arch = opts.arch ?? runtimeArch();
    const tag = target.ref.tags[0]!;
    await target.client.deleteImage(target.ref, tag, arch);
    const shown = formatLibraryRef(target.ref, [tag]);
    if (opts.json) printJson({ ref: shown, arch, deleted: true });
    else say(opts, `Deleted ${shown} (${arch})`);
  });
}
