import type { Command } from 'commander';
import { ClientConfig } from '../../client/config.js';
import { LibraryClient } from '../../client/library.js';
import { CliError } from '../errors.js';
import { outputOptions, printJson, remoteOption, say, type OutputOpts } from './client-common.js';

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/i;

/** `shelf images ENTITY[/COLLECTION]`: every image the caller may see there, over the Library search. */
export function registerImages(program: Command): void {
  const cmd = program.command('images <where>').description('list the images of an entity or ENTITY/COLLECTION on the remote');
  remoteOption(outputOptions(cmd)).action(async (where: string, opts: OutputOpts & { remote?: string }) => {
    const [entity, collection, ...rest] = where.replace(/^library:(\/\/)?/, '').split('/');
    if (!entity || !NAME.test(entity) || (collection !== undefined && !NAME.test(collection)) || rest.length) {
      throw new CliError(`bad argument ${JSON.stringify(where)}: expected ENTITY or ENTITY/COLLECTION`, 2);
    }
    const remote = (await ClientConfig.load()).pick(opts.remote);
    const client = await LibraryClient.discover(remote.url, process.env.SHELF_TOKEN || remote.token);
    const images = (await client.imagesWithin(entity, collection))
      .filter((i) => i.entityName === entity && (collection === undefined || i.collectionName === collection))
      .sort((a, b) => `${a.collectionName}/${a.containerName}/${a.arch}`.localeCompare(`${b.collectionName}/${b.containerName}/${b.arch}`));
    if (opts.json) {
      printJson(images);
      return;
    }
    if (images.length === 0) {
      say(opts, `No images in ${where}`);
      return;
    }
    const refs = images.map((i) => `library://${i.entityName}/${i.collectionName}/${i.containerName}:${i.tags.length ? i.tags.join(',') : i.hash}`);
    const w = Math.max(...refs.map((r) => r.length));
    say(opts, `${'IMAGE'.padEnd(w)}  ${'ARCH'.padEnd(8)}  ${'SIZE'.padStart(12)}  SIGNED`);
    images.forEach((i, n) => say(opts, `${refs[n]!.padEnd(w)}  ${(i.arch ?? '-').padEnd(8)}  ${String(i.size).padStart(12)}  ${i.signed ? 'yes' : i.fingerprints?.length ? 'unverified' : 'no'}`));
  });
}
