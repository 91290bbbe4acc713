import type { KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import * as openpgp from 'openpgp';
import type { KeysRepo } from '../meta/repos/keys.js';
import type { Database } from '../meta/schema.js';
import type { KeyProvider } from '../sif/index.js';
import type { Principal } from './accounts.js';
import { RegistryError } from './errors.js';
import { nowIso } from './util.js';

export const MAX_KEY_BYTES = 256 * 1024;

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

/**
 * The HKP keyserver's keys. New keys must be valid public keys; a key already held is merged
 * with what is sent (new user IDs, subkeys, revocations), so a revocation reaches every verifier.
 */
export class Keystore {
  /** Told the fingerprints whose key changed, so images they signed are verified again. */
  onKeysChanged: (fingerprints: string[]) => void = () => {};

  constructor(
    private readonly db: Kysely<Database>,
    private readonly keys: KeysRepo,
  ) {}

  async add(principal: Principal | null, armored: string, opts: { allowAnonymous: boolean }): Promise<string[]> {
    if (!principal && !opts.allowAnonymous) throw new RegistryError('unauthorized', 'sign in to add keys (anonymous key uploads are off)');
    if (Buffer.byteLength(armored) > MAX_KEY_BYTES) throw new RegistryError('too-large', `key text larger than ${MAX_KEY_BYTES} bytes`);
    let keys: openpgp.Key[];
    try {
      keys = await openpgp.readKeys({ armoredKeys: armored });
    } catch (err) {
      throw new RegistryError('invalid', `not an OpenPGP public key: ${(err as Error).message}`);
    }
    const changed: string[] = [];
    for (const key of keys) {
      if (key.isPrivate()) throw new RegistryError('invalid', 'refusing a private key: send the public key only');
      const incoming = key as openpgp.PublicKey;
      const fingerprint = incoming.getFingerprint().toUpperCase();
      const existing = await this.get(fingerprint);
      let merged: openpgp.PublicKey;
      if (existing) {
        try {
          merged = await existing.key.update(incoming);
        } catch (err) {
          throw new RegistryError('invalid', `cannot merge into key ${fingerprint}: ${(err as Error).message}`);
        }
      } else {
        try {
          await incoming.verifyPrimaryKey();
        } catch (err) {
          throw new RegistryError('invalid', `key ${fingerprint} is not usable: ${(err as Error).message}`);
        }
        const expires = await incoming.getExpirationTime();
        if (expires instanceof Date && expires.getTime() <= Date.now()) {
          throw new RegistryError('invalid', `key ${fingerprint} expired on ${expires.toISOString()}`);
        }
        merged = incoming;
      }
      await this.store(merged, existing ? null : (principal?.userId ?? null));
      changed.push(fingerprint);
    }
    if (changed.length) this.onKeysChanged(changed);
    return changed;
  }

  private async store(key: openpgp.PublicKey, owner: string | null): Promise<void> {
    const d = await describe(key);
    const now = nowIso();
    const row = {
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
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('pgp_keys')
        .values({ ...row, owner_user_id: owner, added_at: now })
        .onConflict((oc) => oc.column('fingerprint').doUpdateSet(row))
        .execute();
      await trx.deleteFrom('pgp_key_ids').where('fingerprint', '=', d.fingerprint).execute();
      for (const keyId of ids) await trx.insertInto('pgp_key_ids').values({ key_id: keyId, fingerprint: d.fingerprint }).execute();
    });
  }

  /** Admins remove keys; images they signed are verified again (and no longer verify). */
  async remove(principal: Principal | null, fingerprint: string): Promise<void> {
    if (!principal?.isAdmin) throw new RegistryError(principal ? 'forbidden' : 'unauthorized', 'only an administrator may remove keys');
    const fp = fingerprint.toUpperCase();
    const res = await this.db.deleteFrom('pgp_keys').where('fingerprint', '=', fp).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new RegistryError('not-found', `key ${fp} not found`);
    this.onKeysChanged([fp]);
  }

  async get(fingerprint: string): Promise<StoredKey | null> {
    const row = await this.db.selectFrom('pgp_keys').selectAll().where('fingerprint', '=', fingerprint.toUpperCase()).executeTakeFirst();
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
      else {
        const rows = await this.db.selectFrom('pgp_key_ids').select('fingerprint').where('key_id', 'like', `%${h}`).execute();
        fingerprints = [...new Set(rows.map((r) => r.fingerprint))];
      }
      const found = await Promise.all(fingerprints.map((f) => this.get(f)));
      return found.filter((k): k is StoredKey => k !== null).slice(0, limit);
    }
    const needle = text.trim().toLowerCase();
    if (needle.length < 3) throw new RegistryError('invalid', 'search for at least 3 characters');
    // The database finds candidates a batch at a time (a substring of the stored user IDs); the
    // exact rule (a whole ID or address) is checked here.
    const out: StoredKey[] = [];
    for (let after = ''; out.length < limit; ) {
      const rows = await this.keys.byUserIdText(needle, after, limit);
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
