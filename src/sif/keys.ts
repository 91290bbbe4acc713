import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as openpgp from 'openpgp';
import { SifError } from './errors.js';

export { sshKeyId } from './dsse.js';

/** Where verification finds keys: PGP keys by issuer key ID or fingerprint, and DSSE public keys. */
export interface KeyProvider {
  /**
   * PGP public keys whose primary key or a subkey has this ID: 16 hex (key ID, what signatures
   * carry) or 40 hex (v4 fingerprint, when a signature names no key ID). Any case.
   */
  pgpKeys(keyId: string): Promise<openpgp.PublicKey[]>;
  dsseKeys(): Promise<KeyObject[]>;
  /** Where a key came from, as `apptainer verify` shows it ("LOCAL", "REMOTE", …). */
  readonly label: string;
}

/** Key IDs (16 hex) match the primary key or a subkey; fingerprints (40 hex) likewise. */
export function keyMatches(key: openpgp.PublicKey, id: string): boolean {
  const want = id.toUpperCase().replace(/^0X/, '');
  const parts = [key, ...key.getSubkeys()];
  if (want.length === 40) return parts.some((k) => k.getFingerprint().toUpperCase() === want);
  return parts.some((k) => k.getKeyID().toHex().toUpperCase() === want);
}

const PGP_BLOCK = /-----BEGIN PGP (?:PUBLIC|PRIVATE) KEY BLOCK-----[\s\S]*?-----END PGP (?:PUBLIC|PRIVATE) KEY BLOCK-----/g;

/**
 * Public keys from key material: one or more armored blocks (public or private keys; private
 * ones are reduced to their public part), or a binary keyring (what `gpg --export` writes).
 */
export async function readPgpKeys(material: string | Uint8Array): Promise<openpgp.PublicKey[]> {
  const toPublic = (keys: openpgp.Key[]) => keys.map((k) => (k.isPrivate() ? k.toPublic() : (k as openpgp.PublicKey)));
  try {
    const text = typeof material === 'string' ? material : Buffer.from(material).toString('latin1');
    const blocks = text.match(PGP_BLOCK);
    if (blocks) {
      const keys: openpgp.PublicKey[] = [];
      for (const armoredKeys of blocks) keys.push(...toPublic(await openpgp.readKeys({ armoredKeys })));
      return keys;
    }
    if (typeof material === 'string') throw new Error('no armored key block');
    return toPublic(await openpgp.readKeys({ binaryKeys: material }));
  } catch (err) {
    throw new SifError('bad-key', `not an OpenPGP key: ${(err as Error).message}`);
  }
}

/** Keys held in memory: OpenPGP public keys and PEM public keys (DSSE). */
export class StaticKeys implements KeyProvider {
  constructor(
    private readonly pgp: openpgp.PublicKey[],
    private readonly pem: KeyObject[],
    readonly label = 'LOCAL',
  ) {}

  /** From armored OpenPGP keys, e.g. what a keyserver hands out. */
  static async fromArmored(armored: string[], label = 'LOCAL'): Promise<StaticKeys> {
    const keys: openpgp.PublicKey[] = [];
    for (const text of armored) keys.push(...(await readPgpKeys(text)));
    return new StaticKeys(keys, [], label);
  }

  async pgpKeys(keyId: string): Promise<openpgp.PublicKey[]> {
    return this.pgp.filter((k) => keyMatches(k, keyId));
  }

  async dsseKeys(): Promise<KeyObject[]> {
    return this.pem;
  }
}

/**
 * A key file: an OpenPGP keyring (armored blocks or binary, public or private keys) or a PEM
 * public/private key for DSSE.
 */
export async function keysFromFile(file: string, label = 'LOCAL'): Promise<StaticKeys> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new SifError('io', `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  const text = bytes.toString('latin1');
  if (text.includes('-----BEGIN PGP')) return new StaticKeys(await readPgpKeys(text), [], label);
  if (text.includes('-----BEGIN ')) {
    try {
      return new StaticKeys([], [createPublicKey(text)], label);
    } catch {
      throw new SifError('bad-key', `${file}: not a usable PEM key`);
    }
  }
  // An OpenPGP binary packet starts with a byte whose top bit is set.
  if (bytes.length > 0 && (bytes[0]! & 0x80) !== 0) {
    try {
      return new StaticKeys(await readPgpKeys(new Uint8Array(bytes)), [], label);
    } catch {
      throw new SifError('bad-key', `${file}: not an OpenPGP keyring`);
    }
  }
  throw new SifError('bad-key', `${file}: neither an OpenPGP key nor a PEM key`);
}

/** Largest keyserver answer read: keys are a few KiB. */
const MAX_HKP_RESPONSE = 1 << 20;

/** Keys fetched from an HKP keyserver (`GET /pks/lookup?op=get&search=0x…&exact=on`). */
export class HkpKeys implements KeyProvider {
  readonly label = 'REMOTE';
  constructor(
    private readonly baseUrl: string,
    private readonly timeoutMs = 10_000,
  ) {}

  /** hkp:// is http on port 11371 unless a port is given, hkps:// is https; the path is dropped. */
  lookupUrl(keyId: string): URL {
    const base = new URL(this.baseUrl);
    const scheme = base.protocol;
    const url = new URL(`${scheme === 'hkps:' ? 'https:' : scheme === 'hkp:' ? 'http:' : scheme}//${base.host}/pks/lookup`);
    if (scheme === 'hkp:' && !base.port) url.port = '11371';
    // What Apptainer sends: lower-case hex, leading zeros dropped.
    const search = `0x${keyId.toLowerCase().replace(/^0x/, '').replace(/^0+(?=.)/, '')}`;
    url.search = new URLSearchParams({ op: 'get', search, exact: 'on' }).toString();
    return url;
  }

  async pgpKeys(keyId: string): Promise<openpgp.PublicKey[]> {
    let url: URL;
    try {
      url = this.lookupUrl(keyId);
    } catch {
      throw new SifError('io', `keyserver ${this.baseUrl}: not a URL`);
    }
    if (!['http:', 'https:'].includes(url.protocol)) throw new SifError('io', `keyserver ${this.baseUrl}: unsupported scheme ${url.protocol}`);
    let body: string;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs), headers: { accept: 'application/pgp-keys' } });
      if (res.status === 404) {
        await res.body?.cancel();
        return [];
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new SifError('io', `keyserver ${this.baseUrl}: HTTP ${res.status}`);
      }
      body = await readLimited(res, MAX_HKP_RESPONSE);
    } catch (err) {
      if (err instanceof SifError) throw err;
      throw new SifError('io', `keyserver ${this.baseUrl}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
    }
    const keys = await readPgpKeys(body);
    return keys.filter((k) => keyMatches(k, keyId));
  }

  async dsseKeys(): Promise<KeyObject[]> {
    return [];
  }
}

async function readLimited(res: Response, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (!res.body) return '';
  for await (const chunk of res.body) {
    total += (chunk as Uint8Array).length;
    if (total > limit) throw new SifError('io', `keyserver answer larger than ${limit} bytes`);
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Several providers, asked in order (e.g. key files, then a keyserver). */
export class KeyChain implements KeyProvider {
  readonly label = 'CHAIN';
  constructor(readonly providers: KeyProvider[]) {}

  /** The keys of the first provider that has any, with that provider's label. */
  async find(keyId: string): Promise<{ keys: openpgp.PublicKey[]; label: string }> {
    for (const p of this.providers) {
      const keys = await p.pgpKeys(keyId);
      if (keys.length) return { keys, label: p.label };
    }
    return { keys: [], label: 'UNKNOWN' };
  }

  async pgpKeys(keyId: string): Promise<openpgp.PublicKey[]> {
    return (await this.find(keyId)).keys;
  }

  async dsseKeys(): Promise<KeyObject[]> {
    return (await Promise.all(this.providers.map((p) => p.dsseKeys()))).flat();
  }
}
