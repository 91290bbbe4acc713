import type { Command } from 'commander';
import { HkpKeys, KeyChain, keysFromFile, readSif, verifySif, type KeyProvider, type SifImage, type VerifyResult } from '../../sif/index.js';
import { CliError } from '../errors.js';
import { objectRow, out, sifAction, withFile } from './sif-common.js';

/** Apptainer's text output: signer, the "Objects verified" table per signature, then the verdict. */
function printVerified(file: string, image: SifImage, result: VerifyResult): void {
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
      out(`${objectRow(d)}${d.dataTypeName}`);
    }
  }
  out(`Container verified: ${file}`);
}

/** A repeatable option's values (`--key a --key b`); a variadic option would swallow the image path. */
const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerVerify(program: Command): void {
  program
    .command('verify <file>')
    .description('verify every signature of a SIF image with key files or a keyserver')
    .option('--key <file>', 'an OpenPGP public key or keyring, or a PEM public key for DSSE (repeat for several)', collect, [])
    .option('--keyserver <url>', 'an HKP keyserver (http, https, hkp, hkps; e.g. a Shelf server) to fetch PGP keys from')
    .option('--json', 'the result as JSON')
    .action(
      sifAction(async (file: string, opts: { key: string[]; keyserver?: string; json?: boolean }) => {
        const providers: KeyProvider[] = [];
        for (const k of opts.key) providers.push(await keysFromFile(k));
        if (opts.keyserver) providers.push(new HkpKeys(opts.keyserver));
        if (providers.length === 0) throw new CliError('give --key FILE or --keyserver URL', 2);
        const { result, image } = await withFile(file, async (s) => ({ result: await verifySif(s, new KeyChain(providers)), image: await readSif(s) }));
        if (opts.json) {
          out(JSON.stringify({ file, verified: result.ok, error: result.error ?? null, signatures: result.signatures }, null, 2));
          if (!result.ok) process.exitCode = 1;
          return;
        }
        if (!result.ok) {
          const failed = result.signatures.find((s) => !s.ok);
          throw new CliError(failed?.error ?? result.error ?? 'verification failed', 1);
        }
        printVerified(file, image, result);
      }),
    );
}
