import type { Command } from 'commander';
import { ClientConfig } from '../../client/config.js';
import { LibraryClient, type LibraryImage } from '../../client/library.js';
import { CliError } from '../errors.js';
import { outputOptions, printJson, remoteOption, runtimeArch, say, type OutputOpts } from './client-common.js';

interface SearchOpts extends OutputOpts {
  arch?: string;
  signed?: boolean;
  remote?: string;
}

/** One search hit as Apptainer prints it: the reference, then description and signers indented. */
export function imageEntry(img: LibraryImage): string {
  const tagSpec = img.tags?.length ? img.tags.join(',') : img.hash;
  let item = `\tlibrary://${img.entityName}/${img.collectionName}/${img.containerName}:${tagSpec}`;
  if (img.description && img.description.toLowerCase() !== 'no description') item += `\n\t\t${img.description}`;
  if (img.fingerprints?.length) item += `\n\t\tSigned by: ${img.fingerprints.join(',')}`;
  return item;
}

/** `shelf search QUERY`: images of the remote by name or description, as `apptainer search` lists them. */
export function registerSearch(program: Command): void {
  const cmd = program
    .command('search <query>')
    .description('search the remote’s images by entity, collection, container name or description')
    .option('--arch <arch>', 'only images for this architecture (default: this machine’s; results are always for one architecture)')
    .option('--signed', 'only signed images');
  remoteOption(outputOptions(cmd)).action(async (query: string, opts: SearchOpts) => {
    if (query.trim().length < 3) throw new CliError(`bad query ${JSON.stringify(query)}: search for at least 3 characters`, 2);
    const remote = (await ClientConfig.load()).pick(opts.remote);
    const client = await LibraryClient.discover(remote.url, process.env.SHELF_TOKEN || remote.token);
    const arch = opts.arch ?? runtimeArch();
    const results = await client.search(query, arch, opts.signed ?? false);
    if (opts.json) {
      printJson(results);
      return;
    }
    if (results.image.length === 0) {
      say(opts, `No container images found for ${arch} matching ${JSON.stringify(query)}.`);
      say(opts);
      return;
    }
    say(opts, `Found ${results.image.length} container images for ${arch} matching ${JSON.stringify(query)}:`);
    say(opts);
    say(opts, results.image.map(imageEntry).sort().join('\n\n'));
    say(opts);
  });
}
