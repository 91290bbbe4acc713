import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as openpgp from 'openpgp';
import { SifError } from './errors.js';

/** Where verification finds keys: PGP keys by issuer key ID, and DSSE public keys. */
export interface KeyProvider {
  /** PGP public keys whose primary key or a subkey has this 16-hex key ID. */
  pgpKeys(keyId: string): Promise<openpgp.PublicKey[]>;
  dsseKeys(): Promise<KeyObject[]>;
  /** Where a key came from, as `apptainer verify` shows it. */
  readonly label: string;
}

const matchesKeyId = (key: openpgp.PublicKey, keyId: string): boolean =>
  key.getKeyIDs().some((id) => id.toHex().toUpperCase() === keyId.toUpperCase());

/** Keys held in memory: armored PGP public keys and PEM public keys. */
export class StaticKeys implements KeyProvider {
  constructor(
    private readonly pgp: openpgp.PublicKey[],
    private readonly pem: KeyObject[],
    readonly label = 'LOCAL',
  ) {}

  static async fromArmored(armored: string[], label = 'LOCAL'): Promise<StaticKeys> {
    const keys: openpgp.PublicKey[] = [];
    for (const text of armored) keys.push(...(await readPgpKeys(text)));
    return new StaticKeys(keys, [], label);
  }

  async pgpKeys(keyId: string): Promise<openpgp.PublicKey[]> {
    return this.pgp.filter((k) => matchesKeyId(k, keyId));
  }

  async dsseKeys(): Promise<KeyObject[]> {
    return this.pem;
  }
}

export async function readPgpKeys(armored: string): Promise<openpgp.PublicKey[]> {
  try {
    const keys = await openpgp.readKeys({ armoredKeys: armored });
    return keys.map((k) => (k.isPrivate() ? k.toPublic() : (k as openpgp.PublicKey)));
  } catch (err) {
    throw new SifError('bad-key', `not an OpenPGP key: ${(err as Error).message}`);
  }
}

/** A key file: an armored OpenPGP key (public or private) or a PEM public/private key. */
export async function keysFromFile(file: string): Promise<StaticKeys> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SifError('io', `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (text.includes('-----BEGIN PGP')) return new StaticKeys(await readPgpKeys(text), [], 'LOCAL');
  try {
    return new StaticKeys([], [createPublicKey(text)], 'LOCAL');
  } catch {
    throw new SifError('bad-key', `${file}: neither an OpenPGP key nor a PEM key`);
  }
}

/** Keys fetched from an HKP keyserver (`/pks/lookup?op=get&search=0x…&exact=on`). */
export class HkpKeys implements KeyProvider {
  readonly label = 'REMOTE';
  constructor(private readonly baseUrl: string) {}

  async pgpKeys(keyId: string): Promise<openpgp.PublicKey[]> {
    const url = new URL('/pks/lookup', this.baseUrl.replace(/^hkp:/, 'http:').replace(/^hkps:/, 'https:'));
    url.search = new URLSearchParams({ op: 'get', search: `0x${keyId.toLowerCase().replace(/^0+/, '')}`, exact: 'on' }).toString();
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      throw new SifError('io', `keyserver ${this.baseUrl}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
    }
    if (res.status === 404) return [];
    if (!res.ok) throw new SifError('io', `keyserver ${this.baseUrl}: HTTP ${res.status}`);
    const keys = await readPgpKeys(await res.text());
    return keys.filter((k) => matchesKeyId(k, keyId));
  }

  async dsseKeys(): Promise<KeyObject[]> {
    return [];
  }
}

/** Several providers, asked in order. */
export class KeyChain implements KeyProvider {
  readonly label = 'CHAIN';
  constructor(readonly providers: KeyProvider[]) {}

  async pgpKeys(keyId: string): Promise<openpgp.PublicKey[]> {
    for (const p of this.providers) {
      const keys = await p.pgpKeys(keyId);
      if (keys.length) return keys;
    }
    return [];
  }

  async dsseKeys(): Promise<KeyObject[]> {
    return (await Promise.all(this.providers.map((p) => p.dsseKeys()))).flat();
  }

  /** Which provider holds a key ID (for "[LOCAL]" / "[REMOTE]"). */
  async labelOf(keyId: string): Promise<string> {
    for (const p of this.providers) if ((await p.pgpKeys(keyId)).length) return p.label;
    return 'UNKNOWN';
  }
}

/** OpenSSH-style key ID (`ssh-keygen -l`): SHA256 of the SSH wire encoding, unpadded base64. */
export function sshKeyId(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  const str = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const mpint = (b64: string) => {
    let b = Buffer.from(b64, 'base64url');
    while (b.length > 1 && b[0] === 0 && (b[1]! & 0x80) === 0) b = b.subarray(1);
    if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
    return str(b);
  };
  let wire: Buffer;
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    wire = Buffer.concat([str(Buffer.from('ssh-ed25519')), str(Buffer.from(jwk.x!, 'base64url'))]);
  } else if (jwk.kty === 'EC') {
    const curve = { 'P-256': 'nistp256', 'P-384': 'nistp384', 'P-521': 'nistp521' }[jwk.crv!];
    if (!curve) throw new SifError('bad-key', `unsupported curve ${jwk.crv}`);
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
    wire = Buffer.concat([str(Buffer.from(`ecdsa-sha2-${curve}`)), str(Buffer.from(curve)), str(point)]);
  } else if (jwk.kty === 'RSA') {
    wire = Buffer.concat([str(Buffer.from('ssh-rsa')), mpint(jwk.e!), mpint(jwk.n!)]);
  } else {
    throw new SifError('bad-key', `unsupported key type ${jwk.kty}`);
  }
  return `SHA256:${createHash('sha256').update(wire).digest('base64').replace(/=+$/, '')}`;
}
