import { ClientError } from '../client/errors.js';
import { failure, send } from '../client/http.js';

export interface KeyCopyResult {
  copied: string[];
  present: string[];
  /** Fingerprints the source's keyserver does not have (or there is no source keyserver). */
  missing: string[];
  /** Why keys could not be copied at all (a keyserver failed). */
  error?: string;
}

const lookup = (base: string, fingerprint: string) =>
  `${base}/pks/lookup?${new URLSearchParams({ op: 'get', exact: 'on', search: `0x${fingerprint.toLowerCase()}` })}`;

/**
 * Copies signers' public keys over HKP: each one the destination keyserver does not have yet is
 * fetched from the source's keyserver and added (`/pks/add`) with the destination's token.
 */
export async function copyKeys(
  fingerprints: string[],
  from: string | null,
  to: string,
  token: string | null,
  dryRun: boolean,
): Promise<KeyCopyResult> {
  const result: KeyCopyResult = { copied: [], present: [], missing: [] };
  for (const fingerprint of [...new Set(fingerprints.map((f) => f.toUpperCase()))].sort()) {
    const have = await send(lookup(to, fingerprint));
    await have.body?.cancel();
    if (have.ok) {
      result.present.push(fingerprint);
      continue;
    }
    if (!from) {
      result.missing.push(fingerprint);
      continue;
    }
    const res = await send(lookup(from, fingerprint));
    if (res.status === 404) {
      await res.body?.cancel();
      result.missing.push(fingerprint);
      continue;
    }
    if (!res.ok) throw await failure(res, `key ${fingerprint} from ${from}`);
    const armored = await res.text();
    if (!armored.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')) throw new ClientError('server', `key ${fingerprint} from ${from}: not an armored public key`);
    if (!dryRun) {
      const add = await send(`${to}/pks/add`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: new URLSearchParams({ keytext: armored }).toString(),
      });
      if (!add.ok) throw await failure(add, `add key ${fingerprint} to ${to}`);
      await add.body?.cancel();
    }
    result.copied.push(fingerprint);
  }
  return result;
}
