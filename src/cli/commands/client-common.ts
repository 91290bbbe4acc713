import { stat } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { ClientConfig, type Remote } from '../../client/config.js';
import { ClientError } from '../../client/errors.js';
import { LibraryClient } from '../../client/library.js';
import { OciClient } from '../../client/oci.js';
import { parseRef, registryBaseUrl, type LibraryRef, type OrasRef } from '../../client/refs.js';
import { RegistryAuth } from '../../client/registry-auth.js';
import { FileSource, SifError, summarizeSif } from '../../sif/index.js';
import { CliError } from '../errors.js';

export interface OutputOpts {
  quiet?: boolean;
  json?: boolean;
}

export interface RemoteOpts {
  remote?: string;
}

/** `-q/--quiet` and `--json` on a command that talks to a server. */
export const outputOptions = (c: Command): Command =>
  c.option('-q, --quiet', 'print nothing but errors').option('--json', 'print the result as JSON on standard output (for scripts)');

export const remoteOption = (c: Command): Command => c.option('--remote <name>', 'use this remote instead of the one in use (library:// only)');

/** Prints a human line unless quiet or JSON. */
export const say = (opts: OutputOpts, line = ''): void => {
  if (!opts.quiet && !opts.json) process.stdout.write(`${line}\n`);
};

export const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

/** Go's name for this machine's architecture, the default for pulls as in Apptainer. */
export function runtimeArch(): string {
  const map: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips64el: 'mips64le' };
  return map[process.arch] ?? process.arch;
}

export interface Progress {
  tick(bytes: number): void;
  stop(): void;
}

/** A byte progress bar on standard error, only on a terminal and never with --quiet or --json. */
export function progressBar(label: string, total: number, opts: OutputOpts): Progress {
  if (opts.quiet || opts.json || !process.stderr.isTTY) return { tick: () => undefined, stop: () => undefined };
  const mib = (n: number) => (n / 2 ** 20).toFixed(1);
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {done}/{all} MiB | {speed} MiB/s | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let done = 0;
  bar.start(total, 0, { done: '0.0', all: mib(total), speed: '0.0' });
  return {
    tick(bytes) {
      done += bytes;
      const secs = Math.max(0.001, (Date.now() - started) / 1000);
      bar.update(Math.min(done, total), { done: mib(done), all: mib(total), speed: (done / 2 ** 20 / secs).toFixed(1) });
    },
    stop: () => bar.stop(),
  };
}

/** Size of a local file, or a one-line error. */
export async function fileSize(file: string): Promise<number> {
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new CliError(`${file}: not a regular file`, 1);
    return s.size;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`${file}: no such file`, 1);
  }
}

/** The architecture a SIF's primary partition (else header) names. */
export async function sifArch(file: string): Promise<string | null> {
  let source: FileSource;
  try {
    source = await FileSource.open(file);
  } catch {
    throw new CliError(`${file}: no such file`, 1);
  }
  try {
    return (await summarizeSif(source)).arch;
  } catch (err) {
    if (err instanceof SifError) {
      // A 'not-sif' message already says so; other SIF errors name what is wrong with the file.
      throw new CliError(`${file}: ${err.code === 'not-sif' ? err.message : `not a usable SIF image: ${err.message}`}`, 1);
    }
    throw err;
  }
  finally {
    await source.close();
  }
}

export interface LibraryTarget {
  kind: 'library';
  ref: LibraryRef;
  client: LibraryClient;
  remote: Remote | null;
}

export interface OrasTarget {
  kind: 'oras';
  ref: OrasRef;
  client: OciClient;
}

/** A reference with the client for its server: the remote (named, in use, or matching the host) or the registry. */
export async function openTarget(text: string, opts: RemoteOpts): Promise<LibraryTarget | OrasTarget> {
  const ref = parseRef(text);
  const config = await ClientConfig.load();
  if (ref.kind === 'oras') {
    const auth = new RegistryAuth(ref.host, config.registryCredentials(ref.host));
    return { kind: 'oras', ref, client: new OciClient(registryBaseUrl(ref.host), auth) };
  }
  const remote = ref.host && !opts.remote ? config.remoteForHost(ref.host) : config.pick(opts.remote);
  const url = remote?.url ?? registryBaseUrl(ref.host!);
  const token = process.env.SHELF_TOKEN || remote?.token || null;
  return { kind: 'library', ref, client: await LibraryClient.discover(url, token), remote };
}

export function libraryOnly(target: LibraryTarget | OrasTarget, what: string): asserts target is LibraryTarget {
  if (target.kind !== 'library') throw new ClientError('usage', `${what} works on library:// references only`);
}

export const positiveInt = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new CliError(`${name} must be a positive integer`, 2);
  return n;
};
