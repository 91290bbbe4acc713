import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { readSigningKey, signSif } from '../../sif/index.js';
import { CliError } from '../errors.js';
import { out, sifAction } from './sif-common.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerSign(program: Command): void {
  program
    .command('sign <file>')
    .description('sign every object group of a SIF image in place (PGP, or DSSE with a PEM key), as apptainer sign does')
    .requiredOption('--key <keyfile>', 'an armored OpenPGP v4 private key, or a PEM private key (ECDSA, RSA, Ed25519) for DSSE')
    .option('--dsse', 'require a DSSE signature (PEM key)')
    .option('--passphrase-stdin', 'read the key passphrase from standard input')
    .action(
      sifAction(async (file: string, opts: { key: string; dsse?: boolean; passphraseStdin?: boolean }) => {
        let text: string;
        try {
          text = await readFile(opts.key, 'utf8');
        } catch {
          throw new CliError(`cannot read key file ${opts.key}`, 1);
        }
        const passphrase = opts.passphraseStdin ? (await readStdin()).replace(/\r?\n$/, '') : undefined;
        const key = await readSigningKey(text, passphrase);
        if (opts.dsse && key.kind !== 'dsse') throw new CliError('--dsse needs a PEM private key, not an OpenPGP key', 2);
        const result = await signSif(file, key);
        const ids = result.signatureIds.join(', ');
        const signer = result.fingerprint ? `signer ${result.fingerprint}` : 'DSSE';
        out(`Signature created and applied to image '${file}' (object${result.signatureIds.length > 1 ? 's' : ''} ${ids}, ${signer})`);
      }),
    );
}
