import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Repositories } from '../../meta/store.js';

/**
 * Where the key of capability tokens comes from. Never the database: a copy of it must not be
 * enough to forge download links or registry tokens.
 */
export interface SecretSource {
  /** A key given in the configuration (`secret`, `SHELF_SECRET`); every node gets the same. */
  key?: string;
  /** Keys still accepted after a rotation (`secretPrevious`, comma-separated in the environment). */
  previous?: string[];
  /** The key file (0600) used when no key is configured: created on first start. */
  file?: string;
}

/** The key file: one base64url key per line, the current one first, then those still accepted. */
export class KeyFile {
  constructor(readonly file: string) {}

  async read(): Promise<string[] | null> {
    const text = await readFile(this.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (text === null) return null;
    const keys = text.split('\n').map((l) => l.trim()).filter(Boolean);
    if (keys.length === 0) throw new Error(`${this.file} holds no key`);
    return keys;
  }

  /** Creates the file with `key` unless it exists (then another process won): returns its keys. */
  async create(key: string): Promise<string[]> {
    await mkdir(path.dirname(this.file), { recursive: true });
    // Written aside and linked into place: a crash never leaves an empty key file, and of two
    // processes starting at once the first link wins.
    const temp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(temp, `${key}\n`, { mode: 0o600 });
    try {
      await link(temp, this.file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    return (await this.read())!;
  }

  /** A new current key; the one it replaces stays accepted until the next rotation. */
  async rotate(): Promise<void> {
    const keys = (await this.read()) ?? [];
    const next = [newKey(), ...keys.slice(0, 1)];
    const temp = `${this.file}.${process.pid}.tmp`;
    await writeFile(temp, `${next.join('\n')}\n`, { mode: 0o600 });
    await rename(temp, this.file);
  }
}

const newKey = (): string => randomBytes(32).toString('base64url');

/** Where versions before the key file kept the key, in `settings`. */
const LEGACY_KEY = 'capability_key';

/**
 * Signed, expiring tokens for URLs that must work without an Authorization header (the
 * Library client's ranged downloads) and for registry bearer tokens. Signed with the current
 * key; tokens of the previous keys still verify (a rotation's grace period).
 */
export class Capabilities {
  private constructor(private readonly keys: Buffer[]) {}

  /**
   * The configured key, else the key file (created on first start). A key older versions kept
   * in the `settings` table is moved into a new key file (or kept as a previous key) and deleted.
   */
  static async load(store: Pick<Repositories, 'settings'>, source: SecretSource = {}): Promise<Capabilities> {
    const legacy = await store.settings.get(LEGACY_KEY);
    let keys: Buffer[];
    if (source.key) {
      keys = [source.key, ...(source.previous ?? [])].map((k) => Buffer.from(k, 'utf8'));
      if (legacy) keys.push(Buffer.from(legacy, 'base64url'));
    } else if (source.file) {
      const file = new KeyFile(source.file);
      const text = (await file.read()) ?? (await file.create(legacy ?? newKey()));
      keys = text.map((k) => Buffer.from(k, 'base64url'));
    } else {
      // No place to keep it (tests, tools): a key for this process only.
      keys = [randomBytes(32), ...(legacy ? [Buffer.from(legacy, 'base64url')] : [])];
    }
    if (legacy) await store.settings.delete(LEGACY_KEY);
    return new Capabilities(keys);
  }

  sign(subject: string, ttlSeconds: number): string {
    const payload = Buffer.from(JSON.stringify({ s: subject, e: Math.floor(Date.now() / 1000) + ttlSeconds })).toString('base64url');
    return `${payload}.${this.mac(this.keys[0]!, payload)}`;
  }

  /** The subject of a valid, unexpired token, or null. */
  verify(token: string): string | null {
    const [payload, mac] = token.split('.');
    if (!payload || !mac) return null;
    const given = Buffer.from(mac);
    const valid = this.keys.some((key) => {
      const expected = Buffer.from(this.mac(key, payload));
      return expected.length === given.length && timingSafeEqual(expected, given);
    });
    if (!valid) return null;
    try {
      const { s, e } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { s: string; e: number };
      return typeof s === 'string' && e > Date.now() / 1000 ? s : null;
    } catch {
      return null;
    }
  }

  private mac(key: Buffer, payload: string): string {
    return createHmac('sha256', key).update(payload).digest('base64url');
  }
}
