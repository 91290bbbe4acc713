import { ClientError } from './ggcr.js';

/**
 * Apptainer's key commands (container-key-client 0.8, HKP): Apptainer always sends
 * `Authorization: Bearer <token>` to its own remote's keyserver, the bare word without one.
 */
const bearer = (token: string | null): Record<string, string> => ({ authorization: token ? `Bearer ${token}` : 'Bearer' });

export async function keyPush(base: string, token: string | null, armored: string): Promise<void> {
  const res = await fetch(`${base}/pks/add`, {
    method: 'POST',
    headers: { ...bearer(token), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ keytext: armored }).toString(),
  });
  const text = await res.text();
  if (res.status !== 200) throw new ClientError(`key push: status ${res.status}: ${text}`);
}

/** `key search Q`: the machine-readable index; returns the fingerprints listed. */
export async function keySearch(base: string, token: string | null, query: string): Promise<string[]> {
  const q = new URLSearchParams({ fingerprint: 'on', op: 'index', options: 'mr', search: query, 'x-pagesize': '256' });
  const res = await fetch(`${base}/pks/lookup?${q}`, { headers: bearer(token) });
  const text = await res.text();
  if (res.status === 404) return [];
  if (res.status !== 200) throw new ClientError(`key search: status ${res.status}`);
  return text
    .split('\n')
    .filter((l) => l.startsWith('pub:'))
    .map((l) => l.split(':')[1]!.toLowerCase());
}

/** `key pull FINGERPRINT` (lower case, `0x`), or the verify look-up by key ID (`%#x`: no leading zeros). */
export async function keyPull(base: string, token: string | null, search: string): Promise<string> {
  const q = new URLSearchParams({ exact: 'on', op: 'get', search });
  const res = await fetch(`${base}/pks/lookup?${q}`, { headers: bearer(token) });
  const text = await res.text();
  if (res.status !== 200) throw new ClientError(`key pull: status ${res.status}`);
  return text;
}
