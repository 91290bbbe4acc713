import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';

export interface TlsFiles {
  cert: string;
  key: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

export class TlsError extends Error {
  override name = 'TlsError';
}

/** Reads the PEM certificate chain and key, and checks they make a usable pair before serving them. */
export async function readTls(files: TlsFiles): Promise<TlsMaterial> {
  const read = async (what: string, file: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new TlsError(`cannot read TLS ${what} ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const material = { cert: await read('certificate', files.cert), key: await read('key', files.key) };
  try {
    createSecureContext(material);
  } catch (err) {
    throw new TlsError(`TLS certificate ${files.cert} and key ${files.key} do not make a usable pair: ${(err as Error).message}`, { cause: err });
  }
  return material;
}

/** Whether only this machine can reach an address (plain HTTP is fine there). */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}
