import type { KeyObject } from 'node:crypto';
import * as openpgp from 'openpgp';
import type { MetaStore } from '../../meta/store.js';
import type { KeyProvider } from '../../sif/index.js';
import type { Principal } from '../accounts/accounts.js';
import { RegistryError } from '../errors.js';
import { addedParts, cleanKey, partsOf } from './pgp-clean.js';
import { nowIso } from '../util.js';

/** Default cap on one key's armored size, after cleaning and after every merge. */
export const DEFAULT_MAX_KEY_BYTES = 64 * 1024;
/** Keys one upload may carry at most, at full size each. */
export const KEYS_PER_UPLOAD = 4;
const KEYSERVER_LOCK = 'keyserver:merge';

export interface StoredKey {
  fingerprint: string;
  key: openpgp.PublicKey;
  userIds: string[];
  algorithm: number;
  bits: number | null;
  createdAt: number;
  expiresAt: number | null;
  revoked: boolean;
}

const ALGORITHMS: Record<string, number> = { rsaEncryptSign: 1, rsaSign: 3, dsa: 17, ecdh: 18, ecdsa: 19, eddsa: 22, eddsaLegacy: 22, ed25519: 27, ed448: 28 };

async function describe(key: openpgp.PublicKey): Promise<Omit<StoredKey, 'key'>> {
  const info = key.getAlgorithmInfo() as { algorithm: string; bits?: number };
  const expiration = await key.getExpirationTime().catch(() => null);
  const revoked = await key.isRevoked().catch(() => false);
  return {
    fingerprint: key.getFingerprint().toUpperCase(),
    userIds: key.getUserIDs(),
    algorithm: ALGORITHMS[info.algorithm] ?? 0,
    bits: info.bits ?? null,
    createdAt: Math.floor(key.getCreationTime().getTime() / 1000),
    expiresAt: expiration instanceof Date ? Math.floor(expiration.getTime() / 1000) : null,
    revoked,
  };
}

/** A new key must be a valid, unexpired public key with a self-signed user ID. */
async function assertUsable(key: openpgp.PublicKey, fingerprint: string): Promise<void> {
  try {
    await key.verifyPrimaryKey();
  } catch (err) {
    throw new RegistryError('invalid', `key ${fingerprint} is not usable: ${(err as Error).message}`);
  }
  const expires = await key.getExpirationTime();
  if (expires instanceof Date && expires.getTime() <= Date.now()) {
    throw new RegistryError('invalid', `key ${fingerprint} expired on ${expires.toISOString()}`);
  }
}

/**
 * The HKP keyserver's keys. Every key is cleaned first (`cleanKey`: only what its primary key
 * signed stays). Who may change which key: the account that first added a key owns it; the owner
 * and administrators may merge anything the key's holder signed into it (new user IDs, subkeys,
 * signatures, revocations); anyone else allowed to add keys may add new keys, and may update a key
 * they do not own only with signatures on what it already has (revocations, renewed
 * self-signatures), never with new user IDs or subkeys. A key stays within `maxKeyBytes`.
 */
export class Keystore {
  /** Told the fingerprints whose key changed, so images they signed are verified again. */
  onKeysChanged: (fingerprints: string[]) => void = () => {};

  constructor(
    private readonly store: MetaStore,
    readonly maxKeyBytes = DEFAULT_MAX_KEY_BYTES,
  ) {}

  async add(principal: Principal | null, armored: string, opts: { allowAnonymous: boolean }): Promise<string[]> {
    if (!principal && !opts.allowAnonymous) throw new RegistryError('unauthorized', 'sign in to add keys (anonymous key uploads are off)');
    if (Buffer.byteLength(armored) > this.maxKeyBytes * KEYS_PER_UPLOAD) {
      throw new RegistryError('too-large', `key text larger than ${this.maxKeyBytes * KEYS_PER_UPLOAD} bytes`);
    }
    let keys: openpgp.Key[];
    try {
      keys = await openpgp.readKeys({ armoredKeys: armored });
    } catch (err) {
      throw new RegistryError('invalid', `not an OpenPGP public key: ${(err as Error).message}`);
    }
    // Read, merge and write under one lock across nodes: two updates of one key at once both
    // land, neither merged into a copy the other has already replaced.
    const changed = await this.store.locks.run(KEYSERVER_LOCK, () => this.merge(principal, keys));
    if (changed.length) this.onKeysChanged(changed);
    return changed;
  }

  private async merge(principal: Principal | null, keys: openpgp.Key[]): Promise<string[]> {
    const updates: Array<{ key: openpgp.PublicKey; owner: string | null; isNew: boolean }> = [];
    for (const key of keys) {
      if (key.isPrivate()) throw new RegistryError('invalid', 'refusing a private key: send the public key only');
      const incoming = await cleanKey(key as openpgp.PublicKey);
      const fingerprint = incoming.getFingerprint().toUpperCase();
      this.assertSize(incoming, fingerprint);
      const existing = await this.store.keys.byFingerprint(fingerprint);
      if (!existing) {
        await assertUsable(incoming, fingerprint);
        updates.push({ key: incoming, owner: principal?.userId ?? null, isNew: true });
        continue;
      }
      const held = await cleanKey(await openpgp.readKey({ armoredKey: existing.armored }));
      let merged: openpgp.PublicKey;
      try {
        merged = await cleanKey(await held.update(incoming));
      } catch (err) {
        throw new RegistryError('invalid', `cannot merge into key ${fingerprint}: ${(err as Error).message}`);
      }
      const mayExtend = !!principal && (principal.isAdmin || principal.userId === existing.owner_user_id);
      const added = addedParts(partsOf(held), partsOf(merged));
      if (!mayExtend && added.length) {
        throw new RegistryError(
          principal ? 'forbidden' : 'unauthorized',
          `key ${fingerprint} belongs to another account: only its owner may add ${added.join(', ')}; others may send revocations and self-signatures`,
        );
      }
      this.assertSize(merged, fingerprint);
      updates.push({ key: merged, owner: existing.owner_user_id, isNew: false });
    }
    const changed: string[] = [];
    for (const u of updates) {
      await this.write(u.key, u.isNew ? u.owner : null);
      changed.push(u.key.getFingerprint().toUpperCase());
    }
    return changed;
  }

  private assertSize(key: openpgp.PublicKey, fingerprint: string): void {
    const size = Buffer.byteLength(key.armor());
    if (size > this.maxKeyBytes) throw new RegistryError('too-large', `key ${fingerprint} would be ${size} bytes armored, more than the ${this.maxKeyBytes} allowed`);
  }

  private async write(key: openpgp.PublicKey, owner: string | null): Promise<void> {
    const d = await describe(key);
    const now = nowIso();
    const facts = {
      fingerprint: d.fingerprint,
      armored: key.armor(),
      user_ids: JSON.stringify(d.userIds),
      algorithm: d.algorithm,
      bits: d.bits,
      created_at: d.createdAt,
      expires_at: d.expiresAt,
      revoked: d.revoked ? 1 : 0,
      updated_at: now,
    };
    const ids = [...new Set(key.getKeyIDs().map((id) => id.toHex().toUpperCase()))];
    await this.store.transaction((tx) => tx.keys.put(facts, owner, now, ids));
  }

  /** Admins remove keys; images they signed are verified again (and no longer verify). */
  async remove(principal: Principal | null, fingerprint: string): Promise<void> {
    if (!principal?.isAdmin) throw new RegistryError(principal ? 'forbidden' : 'unauthorized', 'only an administrator may remove keys');
    const fp = fingerprint.toUpperCase();
    if (!(await this.store.keys.remove(fp))) throw new RegistryError('not-found', `key ${fp} not found`);
    this.onKeysChanged([fp]);
  }

  async get(fingerprint: string): Promise<StoredKey | null> {
    const row = await this.store.keys.byFingerprint(fingerprint.toUpperCase());
    return row ? this.fromRow(row) : null;
  }

  private async fromRow(row: { armored: string; fingerprint: string; user_ids: string; algorithm: number; bits: number | null; created_at: number; expires_at: number | null; revoked: number }): Promise<StoredKey> {
    return {
      fingerprint: row.fingerprint,
      key: await openpgp.readKey({ armoredKey: row.armored }),
      userIds: JSON.parse(row.user_ids) as string[],
      algorithm: row.algorithm,
      bits: row.bits,
      createdAt: Number(row.created_at),
      expiresAt: row.expires_at === null ? null : Number(row.expires_at),
      revoked: row.revoked === 1,
    };
  }

  /**
   * HKP search: `0x` + 8, 16 or 40 hex (short or long key ID of the primary key or a subkey, or
   * a fingerprint), else text in the user IDs (exact: the whole e-mail address or user ID).
   */
  async search(text: string, exact: boolean, limit = 256): Promise<StoredKey[]> {
    const hex = /^(?:0x)?([0-9a-fA-F]{8}|[0-9a-fA-F]{16}|[0-9a-fA-F]{40})$/.exec(text.trim());
    if (hex && (text.startsWith('0x') || text.startsWith('0X') || hex[1]!.length >= 16)) {
      const h = hex[1]!.toUpperCase();
      let fingerprints: string[];
      if (h.length === 40) fingerprints = [h];
      else fingerprints = await this.store.keys.fingerprintsByKeyIdSuffix(h);
      const found = await Promise.all(fingerprints.map((f) => this.get(f)));
      return found.filter((k): k is StoredKey => k !== null).slice(0, limit);
    }
    const needle = text.trim().toLowerCase();
    if (needle.length < 3) throw new RegistryError('invalid', 'search for at least 3 characters');
    // The database finds candidates a batch at a time (a substring of the stored user IDs); the
    // exact rule (a whole ID or address) is checked here.
    const out: StoredKey[] = [];
    for (let after = ''; out.length < limit; ) {
      const rows = await this.store.keys.byUserIdText(needle, after, limit);
      for (const row of rows) {
        const ids = (JSON.parse(row.user_ids) as string[]).map((u) => u.toLowerCase());
        const hit = exact ? ids.some((u) => u === needle || u.includes(`<${needle}>`)) : ids.some((u) => u.includes(needle));
        if (hit && out.length < limit) out.push(await this.fromRow(row));
      }
      if (rows.length < limit) break;
      after = rows[rows.length - 1]!.fingerprint;
    }
    return out;
  }

  /** Verification keys for the server's own signature checks. */
  provider(): KeyProvider {
    return {
      label: 'SHELF',
      pgpKeys: async (keyId: string) => (await this.search(`0x${keyId}`, true)).map((k) => k.key),
      dsseKeys: async (): Promise<KeyObject[]> => [],
    };
  }
}
