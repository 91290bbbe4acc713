import type { Command } from 'commander';
import { ClientError } from '../../client/errors.js';
import { formatLibraryRef, formatOrasRef, libraryPath } from '../../client/refs.js';
import { openTarget, outputOptions, printJson, remoteOption, say, type OutputOpts } from './client-common.js';

interface UntagOpts extends OutputOpts {
  arch?: string;
  remote?: string;
}

/** `shelf untag REF:TAG`: removes one tag; the image and its other tags stay. */
export function registerUntag(program: Command): void {
  const cmd = program
    .command('untag <ref>')
    .description('remove a tag (library://…:TAG for every architecture, or one with --arch; oras://…:TAG); the image stays')
    .option('--arch <arch>', 'remove the tag of this architecture only (library://)');
  remoteOption(outputOptions(cmd)).action(async (refText: string, opts: UntagOpts) => {
    const target = await openTarget(refText, opts);
    if (target.kind === 'oras') {
      if (!target.ref.tag || target.ref.digest) throw new ClientError('usage', `${refText}: untag needs oras://HOST/REPOSITORY:TAG`);
      await target.client.deleteManifest(target.ref.repository, target.ref.tag);
      if (opts.json) printJson({ ref: formatOrasRef(target.ref), untagged: true });
      else say(opts, `Removed tag ${formatOrasRef(target.ref)}`);
      return;
    }
    if (target.ref.tags.length !== 1 || target.ref.tags[0]!.startsWith('sha256.')) throw new ClientError('usage', `${refText}: untag needs one tag, library://…:TAG`);
    const tag = target.ref.tags[0]!;
    const shown = formatLibraryRef(target.ref, [tag]);
    const container = await target.client.getContainer(target.ref);
    const archTags = await target.client.tags(container!.id);
    const arches = Object.keys(archTags).filter((a) => archTags[a]![tag] !== undefined && (!opts.arch || a === opts.arch));
    if (!arches.length) throw new ClientError('not-found', `${shown} does not exist${opts.arch ? ` for ${opts.arch}` : ''}`);
    for (const arch of arches) await target.client.setTag(container!.id, tag, '', arch || null);
    if (opts.json) printJson({ container: libraryPath(target.ref), tag, arches, untagged: true });
    else say(opts, `Removed tag ${shown} (${arches.join(', ')})`);
  });
}
