import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError } from '../errors.js';

interface KeyOpts {
  keyserver?: string;
  token?: string;
}

function server(opts: KeyOpts): string {
  const url = opts.keyserver ?? process.env.SHELF_URL;
  if (!url) throw new CliError('give --keyserver URL (or SHELF_URL)', 2);
  return url.replace(/\/+$/, '');
}

async function call(url: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new CliError(`cannot reach ${new URL(url).origin}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`, 3);
  }
}

async function failure(res: Response): Promise<CliError> {
  const text = await res.text();
  let message = `${res.status} ${res.statusText}`;
  try {
    message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
  } catch {
    // not JSON
  }
  return new CliError(message, res.status === 404 ? 4 : 1);
}

/** `shelf key push|search|pull` against any HKP keyserver, Shelf's included. */
export function registerKey(program: Command): void {
  const key = program.command('key').description('OpenPGP keys on a keyserver (HKP)');
  const common = (c: Command) => c.option('--keyserver <url>', 'the keyserver (or SHELF_URL)');

  common(key.command('push <file>').description('add a public key to the keyserver'))
    .option('--token <token>', 'an API token: Shelf adds keys for signed-in users only (or SHELF_TOKEN)')
    .action(async (file: string, opts: KeyOpts) => {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new CliError(`cannot read ${file}`, 1);
    }
    const token = opts.token ?? process.env.SHELF_TOKEN;
    const res = await call(`${server(opts)}/pks/add`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: new URLSearchParams({ keytext: text }).toString(),
    });
    if (!res.ok) throw await failure(res);
    const fingerprints = ((await res.json()) as { data?: { fingerprints?: string[] } }).data?.fingerprints ?? [];
    process.stdout.write(`added ${fingerprints.join(', ') || 'the key'}\n`);
  });

  common(key.command('search <text>').description('search keys by user ID text, fingerprint or key ID')).action(async (text: string, opts: KeyOpts) => {
    const q = new URLSearchParams({ op: 'index', options: 'mr', fingerprint: 'on', search: text });
    const res = await call(`${server(opts)}/pks/lookup?${q}`);
    if (res.status === 404) throw new CliError(`no keys match ${text}`, 4);
    if (!res.ok) throw await failure(res);
    const lines = (await res.text()).split('\n');
    const out: string[] = [];
    for (const line of lines) {
      const f = line.split(':');
      if (f[0] === 'pub') out.push(`${f[1]}  created ${new Date(Number(f[4]) * 1000).toISOString().slice(0, 10)}${f[6]?.includes('r') ? '  REVOKED' : ''}${f[6]?.includes('e') ? '  EXPIRED' : ''}`);
      if (f[0] === 'uid') out.push(`    ${decodeURIComponent(f[1] ?? '')}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
  });

  common(key.command('pull <fingerprint>').description('fetch a key by fingerprint or key ID'))
    .option('-o, --output <file>', 'write the armored key here instead of standard output')
    .action(async (fingerprint: string, opts: KeyOpts & { output?: string }) => {
      const q = new URLSearchParams({ op: 'get', exact: 'on', search: `0x${fingerprint.replace(/^0x/i, '').toLowerCase()}` });
      const res = await call(`${server(opts)}/pks/lookup?${q}`);
      if (res.status === 404) throw new CliError(`key ${fingerprint} not found`, 4);
      if (!res.ok) throw await failure(res);
      const armored = await res.text();
      if (opts.output) {
        await writeFile(opts.output, armored);
        process.stdout.write(`wrote ${opts.output}\n`);
      } else {
        process.stdout.write(armored);
      }
    });
}
