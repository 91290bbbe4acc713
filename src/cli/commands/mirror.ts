import path from 'node:path';
import type { Command } from 'commander';
import { ClientConfig } from '../../client/config.js';
import { transfersDir } from '../../client/transfer-state.js';
import { runMirror, type MirrorEvent, type MirrorSummary } from '../../mirror/engine.js';
import { parseMirrorEnd } from '../../mirror/endpoints.js';
import { openMirror } from '../../mirror/open.js';
import { CliError, EXIT } from '../errors.js';
import { outputOptions, positiveInt, printJson, say, type OutputOpts } from './client-common.js';

interface MirrorOpts extends OutputOpts {
  jobs: number;
  concurrency: number;
  chunkSize: number;
  dryRun?: boolean;
  token?: string;
  sourceToken?: string;
  sourceKeyserver?: string;
  workDir?: string;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** `shelf mirror SRC DST`: a Library server's entity, collection, container or tag, or an OCI repository, into a Shelf. */
export function registerMirror(program: Command): void {
  const cmd = program
    .command('mirror <source> <destination>')
    .description(
      'copy library://HOST/ENTITY[/COLLECTION[/CONTAINER[:TAG]]], oras://HOST/REPO[:TAG] or docker://HOST/REPO[:TAG] into a Shelf at library://HOST[/PATH] ' +
        '(same bytes, per-architecture tags, descriptions, signers’ keys); a rerun copies only what changed, an interrupted one resumes',
    )
    .option('-j, --jobs <n>', 'images copied at the same time', positiveInt('--jobs'), 2)
    .option('--concurrency <n>', 'ranges (download) and parts (upload) at the same time per image', positiveInt('--concurrency'), 4)
    .option('--chunk-size <bytes>', 'bytes per range request', positiveInt('--chunk-size'), 8 * 2 ** 20)
    .option('-n, --dry-run', 'say what would be copied, copy nothing')
    .option('--token <token>', 'API token for the destination (default: SHELF_TOKEN, else the remote for its host)')
    .option('--source-token <token>', 'token for a library:// source (default: SHELF_SOURCE_TOKEN, else the remote for its host)')
    .option('--source-keyserver <url>', 'keyserver to fetch signers’ keys from (default: the library source’s own)')
    .option('--work-dir <dir>', 'where fetched images wait for their upload (default: the transfer cache)');
  outputOptions(cmd).action(async (source: string, destination: string, opts: MirrorOpts) => {
    const config = await ClientConfig.load();
    const src = parseMirrorEnd(source);
    const dst = parseMirrorEnd(destination);
    const srcRemote = src.kind === 'library' ? config.remoteForHost(src.host) : null;
    const dstRemote = config.remoteForHost(dst.host);
    const mirror = await openMirror(
      {
        source,
        destination,
        sourceUrl: srcRemote?.url,
        destUrl: dstRemote?.url,
        sourceToken: opts.sourceToken ?? (process.env.SHELF_SOURCE_TOKEN || srcRemote?.token || null),
        sourceCredentials: src.kind === 'library' ? null : config.registryCredentials(src.host),
        sourceKeyserver: opts.sourceKeyserver ?? null,
        destToken: opts.token ?? (process.env.SHELF_TOKEN || dstRemote?.token || null),
      },
      {
        jobs: opts.jobs,
        concurrency: opts.concurrency,
        chunkSize: opts.chunkSize,
        dryRun: !!opts.dryRun,
        workDir: opts.workDir ?? path.join(path.dirname(transfersDir()), 'mirror'),
        onEvent: (e) => progress(e, opts),
      },
    );
    const summary = await runMirror(mirror);
    if (opts.json) printJson(summary);
    else printSummary(summary, opts);
    if (summary.images.failed > 0) {
      const total = summary.outcomes.length;
      throw new CliError(`${summary.images.failed} of ${total} images failed (see above)`, EXIT[summary.failureKind ?? 'failure']);
    }
  });
}

/** One line per image as it is done, on standard error (standard output keeps the summary). */
function progress(e: MirrorEvent, opts: OutputOpts): void {
  if (opts.quiet || opts.json) return;
  const line = (text: string) => process.stderr.write(`${text}\n`);
  const what = (x: { dest: string; arch: string | null; tags: string[] }) => `${x.dest}:${x.tags.join(',')} (${x.arch ?? 'unknown arch'})`;
  if (e.type === 'image') {
    if (e.action === 'copy') line(`copied   ${what(e)} ${mib(e.size)}`);
    else if (e.action === 'tag') line(`tagged   ${what(e)}`);
    else line(`same     ${what(e)}`);
  } else if (e.type === 'failed') {
    line(`FAILED   ${e.dest}: ${e.error}`);
  }
}

function printSummary(s: MirrorSummary, opts: OutputOpts): void {
  const would = s.dryRun ? 'would copy' : 'copied';
  say(opts, `${s.dryRun ? 'Dry run: ' : ''}mirror ${s.source} → ${s.destination}`);
  say(opts, `  containers: ${s.containers}`);
  say(opts, `  images: ${s.images.copied} ${would}, ${s.images.tagged} only re-tagged, ${s.images.unchanged} unchanged, ${s.images.failed} failed`);
  say(opts, `  tags ${s.dryRun ? 'to set' : 'set'}: ${s.tagsSet}`);
  if (!s.dryRun) say(opts, `  bytes: ${mib(s.bytes.downloaded)} downloaded, ${mib(s.bytes.uploaded)} uploaded, ${mib(s.bytes.resumed)} resumed from an earlier run`);
  say(opts, `  keys: ${s.keys.copied.length} ${would}, ${s.keys.present.length} already there, ${s.keys.missing.length} not found at the source`);
  if (s.keys.error) say(opts, `    keys not copied: ${s.keys.error}`);
  for (const f of s.keys.missing) say(opts, `    key ${f} not found: its signatures will not verify with the destination's keyserver`);
}
