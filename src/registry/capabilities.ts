import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../meta/schema.js';
import { isUniqueViolation } from '../meta/errors.js';
import { newSecret } from './util.js';

/**
 * Signed, expiring tokens for URLs that must work without an Authorization header (the
 * Library client's ranged downloads). The key lives in the database so every node agrees.
 */
export class Capabilities {
  private constructor(private readonly key: Buffer) {}

  static async load(db: Kysely<Database>): Promise<Capabilities> {
    const read = () => db.selectFrom('settings').select('value').where('key', '=', 'capability_key').executeTakeFirst();
    let row = await read();
    if (!row) {
      try {
        await db.insertInto('settings').values({ key: 'capability_key', value: newSecret(32) }).execute();
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
      row = await read();
    }
    return new Capabilities(Buffer.from(row!.value, 'base64url'));
  }

  sign(subject: string, ttlSeconds: number): string {
    const payload = Buffer.from(JSON.stringify({ s: subject, e: Math.floor(Date.now() / 1000) + ttlSeconds })).toString('base64url');
    return `${payload}.${this.mac(payload)}`;
  }

  /** The subject of a valid, unexpired token, or null. */
  verify(token: string): string | null {
    const [payload, mac] = token.split('.');
    if (!payload || !mac) return null;
    const expected = Buffer.from(this.mac(payload));
    const given = Buffer.from(mac);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
    try {
      const { s, e } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { s: string; e: number };
      return typeof s === 'string' && e > Date.now() / 1000 ? s : null;
    } catch {
      return null;
    }
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}
