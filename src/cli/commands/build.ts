import { glob, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { BuilderClient } from '../../client/builder.js';
import { ClientConfig } from '../../client/config.js';
import { download } from '../../client/download.js';
import { ClientError } from '../../client/errors.js';
import { LibraryClient, discoverServices } from '../../client/library.js';
import { parseRef } from '../../client/refs.js';
import { DefinitionError, parseDefinitionFile, type Definition } from '../../build/deffile.js';
import { CliError } from '../errors.js';
import { outputOptions, printJson, runtimeArch, say, type OutputOpts } from './client-common.js';

interface BuildOpts extends OutputOpts {
  remote?: boolean;
  builder?: string;
  arch?: string;
  context?: string;
  force?: boolean;
  libraryRef?: string;
}

/** The host files a definition needs in its build context: `%files` (not `from` a stage), `%appfiles`, a localimage. */
async function contextFiles(stages: Definition[], dir: string): Promise<string[]> {
  const patterns: string[] = [];
  for (const s of stages) {
    for (const f of s.files) if (f.fromStage === null) patterns.push(...f.files.map((t) => t.src));
    for (const a of s.apps) patterns.push(...a.files.map((t) => t.src));
    if (s.header.bootstrap?.toLowerCase() === 'localimage' && s.header.from) patterns.push(s.header.from);
  }
  const files: string[] = [];
  for (const p of patterns) {
    const abs = path.resolve(dir, p);
    const matches: string[] = [];
    for await (const m of glob(abs)) matches.push(m);
    if (matches.length === 0) throw new ClientError('usage', `%files: no file matches ${p} (in ${dir})`);
    files.push(...matches);
  }
  return files;
}

/** `shelf build --remote OUT.sif DEF`: builds on the remote's builder, streams its log, pulls the image. */
export function registerBuild(program: Command): void {
  const cmd = program
    .command('build <out> <definition>')
    .description('build a SIF image from a definition file on a remote builder (Shelf or any Sylabs-compatible one)')
    .option('--remote', 'build on the remote builder (the only kind of build shelf does)')
    .option('--builder <url>', "builder URL (default: the remote's builderAPI)")
    .option('--arch <arch>', 'architecture to build for (default: this machine’s)')
    .option('--context <dir>', 'folder the %files sources are taken from (default: the current folder)')
    .option('--library-ref <ref>', 'also keep the image at library://ENTITY/COLLECTION/CONTAINER:TAG')
    .option('-F, --force', 'overwrite OUT if it exists');
  outputOptions(cmd).action(async (out: string, defFile: string, opts: BuildOpts) => {
    if (!opts.remote) throw new CliError('only remote builds are supported: use shelf build --remote OUT.sif DEF', 2);
    if (!opts.force && (await stat(out).catch(() => null))) throw new CliError(`${out} already exists (use -F to overwrite)`, 1);
    const text = await readFile(defFile, 'utf8').catch((err: Error) => {
      throw new CliError(`${defFile}: ${err.message}`, 2);
    });
    let stages: Definition[];
    try {
      stages = parseDefinitionFile(text);
    } catch (err) {
      if (err instanceof DefinitionError) throw new CliError(`${defFile}: ${err.message}`, 2);
      throw err;
    }
    const config = await ClientConfig.load();
    const remote = config.pick();
    const token = process.env.SHELF_TOKEN || remote.token;
    if (!token) throw new ClientError('auth', `remote ${remote.name} has no token: shelf remote login ${remote.name}`);
    const services = await discoverServices(remote.url);
    const builderUri = opts.builder ?? services?.builderAPI?.uri;
    if (!builderUri) throw new ClientError('usage', `remote ${remote.name} (${remote.url}) offers no remote builder (no builderAPI)`);
    const builder = new BuilderClient(builderUri, token);
    const dir = path.resolve(opts.context ?? '.');
    const files = await contextFiles(stages, dir);
    let contextDigest: string | undefined;
    if (files.length) {
      say(opts, `Uploading the build context (${files.length} path(s))`);
      contextDigest = await builder.uploadContext(files);
    }
    const arch = opts.arch ?? runtimeArch();
    const libraryRef = opts.libraryRef ? parseRef(opts.libraryRef) : null;
    if (libraryRef && libraryRef.kind !== 'library') throw new CliError('--library-ref must be a library:// reference', 2);
    const bi = await builder.submit(text, { arch, contextDigest, workingDir: dir, libraryRef: opts.libraryRef });
    const cancel = () => void builder.cancel(bi.id).finally(() => process.exit(130));
    process.once('SIGINT', cancel);
    try {
      await builder.streamOutput(bi.id, (t) => {
        if (!opts.quiet && !opts.json) process.stderr.write(t);
      });
    } finally {
      process.removeListener('SIGINT', cancel);
    }
    const status = await builder.status(bi.id);
    if (!status.isComplete) throw new ClientError('server', 'build has not completed');
    if (!((status.imageSize ?? 0) > 0)) throw new CliError(`build failed${status.error ? `: ${status.error}` : ''}`, 1);
    const ref = parseRef(status.libraryRef);
    if (ref.kind !== 'library') throw new ClientError('server', `the builder answered with ${status.libraryRef}`);
    const library = new LibraryClient(status.libraryURL.replace(/\/+$/, ''), token);
    const tag = ref.tags[0] ?? 'latest';
    const image = await library.getImage(ref, tag, arch);
    if (!image) throw new ClientError('not-found', `${status.libraryRef} is not in the library`);
    const source = await library.downloadSource(ref, tag, arch, image);
    await download(source, { dest: out, concurrency: 4, chunkSize: 8 * 2 ** 20 });
    if (status.imageChecksum && status.imageChecksum.replace('sha256.', 'sha256:') !== source.digest) {
      throw new ClientError('integrity', `downloaded image ${source.digest} is not the one built (${status.imageChecksum})`);
    }
    if (contextDigest) await builder.deleteContext(contextDigest).catch(() => undefined);
    if (opts.json) printJson({ id: bi.id, file: out, libraryRef: status.libraryRef, size: status.imageSize, digest: source.digest });
    else say(opts, `Built ${out} (${status.imageSize} bytes, ${source.digest}); also at ${status.libraryRef}`);
  });
}
