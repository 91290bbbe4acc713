import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  FileSource,
  HkpKeys,
  KeyChain,
  SifError,
  inspectSif,
  keysFromFile,
  readSif,
  readSigningKey,
  signSif,
  verifySif,
  type InspectReport,
  type KeyProvider,
} from '../../sif/index.js';
import { CliError } from '../errors.js';

const out = (line = '') => process.stdout.write(`${line}\n`);

/** Runs a SIF command; SIF errors become one line and exit 1. */
const sifAction =
  <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
  async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      if (err instanceof SifError) throw new CliError(err.message, 1);
      throw err;
    }
  };

async function withFile<T>(path: string, fn: (source: FileSource) => Promise<T>): Promise<T> {
  const source = await FileSource.open(path);
  try {
    return await fn(source);
  } finally {
    await source.close();
  }
}

const linkText = (d: { linkedId: number; linkIsGroup: boolean }) => (d.linkedId === 0 ? 'NONE' : `${d.linkedId}${d.linkIsGroup ? ' (G)' : ''}`);
const groupText = (g: number) => (g === 0 ? 'NONE' : String(g));

function printInspect(file: string, r: InspectReport): void {
  out(`File:          ${file} (${r.fileSize} bytes)`);
  out(`UUID:          ${r.header.uuid}`);
  out(`Architecture:  ${r.primaryArch || r.header.arch}`);
  out(`Created:       ${new Date(r.header.createdAt * 1000).toISOString()}`);
  out(`Modified:      ${new Date(r.header.modifiedAt * 1000).toISOString()}`);
  out(`Objects:       ${r.descriptors.length} of ${r.header.descriptorsTotal} descriptors used`);
  out();
  out('ID  |GROUP   |LINK    |SIF POSITION (start-end)  |TYPE');
  out('------------------------------------------------------------------------------');
  for (const d of r.descriptors) {
    const pos = `${d.offset}-${d.offset + d.size}`;
    let type = d.dataTypeName;
    if (d.partition) type += ` (${d.partition.fsTypeName}/${d.partition.partTypeName}/${d.partition.arch})`;
    if (d.signature) type += ` (${d.signature.hash}${d.signature.format ? `, ${d.signature.format}` : ''})`;
    if (d.name) type += ` ${d.name}`;
    out(`${String(d.id).padEnd(4)}|${groupText(d.groupId).padEnd(8)}|${linkText(d).padEnd(8)}|${pos.padEnd(26)}|${type}`);
  }
  out();
  const labels = Object.entries(r.labels);
  out(`Labels:        ${labels.length ? '' : 'none'}`);
  for (const [k, v] of labels) out(`  ${k}: ${v}`);
  out(`Deffile:       ${r.deffile === null ? 'none' : `${r.deffile.length} bytes (shelf inspect --deffile)`}`);
  out(`Signers:       ${r.signerFingerprints.length ? r.signerFingerprints.join(', ') : 'none'}`);
  if (r.encrypted) out('Encrypted:     yes');
  if (r.hasSbom) out('SBOM:          yes');
}

export function registerSifCommands(program: Command): void {
  program
    .command('inspect <file>')
    .description('show what a SIF image holds: objects, architecture, labels, definition file, signers')
    .option('--json', 'everything as JSON')
    .option('--deffile', 'print only the definition file')
    .option('--labels', 'print only the labels')
    .action(
      sifAction(async (file: string, opts: { json?: boolean; deffile?: boolean; labels?: boolean }) => {
        const report = await withFile(file, (s) => inspectSif(s));
        if (opts.deffile) {
          if (report.deffile === null) throw new CliError(`${file} holds no definition file`, 1);
          process.stdout.write(report.deffile);
        } else if (opts.labels) {
          if (opts.json) out(JSON.stringify(report.labels, null, 2));
          else for (const [k, v] of Object.entries(report.labels)) out(`${k}: ${v}`);
        } else if (opts.json) {
          out(JSON.stringify({ file, ...report }, null, 2));
        } else {
          printInspect(file, report);
        }
      }),
    );

  program
    .command('sign <file>')
    .description('sign every object group of a SIF image (PGP, or DSSE with a PEM key), as apptainer sign does')
    .requiredOption('--key <keyfile>', 'an armored OpenPGP private key, or a PEM private key for DSSE')
    .option('--dsse', 'require a DSSE signature (PEM key: ECDSA P-256, RSA or Ed25519)')
    .option('--passphrase-stdin', 'read the key passphrase from standard input')
    .action(
      sifAction(async (file: string, opts: { key: string; dsse?: boolean; passphraseStdin?: boolean }) => {
        let text: string;
        try {
          text = await readFile(opts.key, 'utf8');
        } catch {
          throw new CliError(`cannot read key file ${opts.key}`, 1);
        }
        const passphrase = opts.passphraseStdin ? (await readAll()).replace(/\r?\n$/, '') : undefined;
        const key = await readSigningKey(text, passphrase);
        if (opts.dsse && key.kind !== 'dsse') throw new CliError('--dsse needs a PEM private key, not an OpenPGP key', 2);
        const result = await signSif(file, key);
        out(`Signature created and applied to image '${file}' (object${result.signatureIds.length > 1 ? 's' : ''} ${result.signatureIds.join(', ')}${result.fingerprint ? `, signer ${result.fingerprint}` : ', DSSE'})`);
      }),
    );

  program
    .command('verify <file>')
    .description('verify every signature of a SIF image with a key file or a keyserver')
    .option('--key <file...>', 'OpenPGP public key(s) or PEM public key(s)')
    .option('--keyserver <url>', 'an HKP keyserver (e.g. a Shelf server) to fetch PGP keys from')
    .option('--json', 'the result as JSON')
    .action(
      sifAction(async (file: string, opts: { key?: string[]; keyserver?: string; json?: boolean }) => {
        const providers: KeyProvider[] = [];
        for (const k of opts.key ?? []) providers.push(await keysFromFile(k));
        if (opts.keyserver) providers.push(new HkpKeys(opts.keyserver));
        if (providers.length === 0) throw new CliError('give --key FILE or --keyserver URL', 2);
        const keys = new KeyChain(providers);
        const { result, image } = await withFile(file, async (s) => ({ result: await verifySif(s, keys), image: await readSif(s) }));
        if (opts.json) {
          out(JSON.stringify({ file, verified: result.ok, error: result.error ?? null, signatures: result.signatures }, null, 2));
          if (!result.ok) process.exitCode = 1;
          return;
        }
        if (!result.ok) {
          const failed = result.signatures.find((s) => !s.ok);
          throw new CliError(failed?.error ?? result.error ?? 'verification failed', 1);
        }
        out(`Verifying image: ${file}`);
        for (const s of result.signatures) {
          if (s.signer) {
            out(`[${s.signer.source}]   Signing entity: ${s.signer.userId}`);
            out(`[${s.signer.source}]   Fingerprint: ${s.signer.fingerprint}`);
          } else if (s.dsseKeyIds) {
            out(`[LOCAL]   DSSE key: ${s.dsseKeyIds.join(', ')}`);
          }
          if (s.legacy) out('WARNING: legacy signature: it does not protect the object descriptors');
          out('Objects verified:');
          out('ID  |GROUP   |LINK    |TYPE');
          out('------------------------------------------------');
          for (const id of s.objects) {
            const d = image.descriptors.find((o) => o.id === id)!;
            out(`${String(d.id).padEnd(4)}|${groupText(d.groupId).padEnd(8)}|${linkText(d).padEnd(8)}|${d.dataTypeName}`);
          }
        }
        out(`Container verified: ${file}`);
      }),
    );
}

async function readAll(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
