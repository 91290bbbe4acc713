import { createHash, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { DSSE_PAYLOAD_TYPE } from './constants.js';
import { SifError } from './errors.js';

export interface DsseEnvelope {
  payloadType: string;
  payload: string;
  signatures: Array<{ keyid: string; sig: string }>;
}

/** A DSSE envelope carrying SIF metadata, or null if the data is not one. */
export function parseDsse(data: Buffer): DsseEnvelope | null {
  if (data[0] !== 0x7b) return null;
  let env: unknown;
  try {
    env = JSON.parse(data.toString('utf8'));
  } catch {
    return null;
  }
  const e = env as Record<string, unknown> | null;
  if (!e || e.payloadType !== DSSE_PAYLOAD_TYPE || typeof e.payload !== 'string' || !Array.isArray(e.signatures)) return null;
  const signatures: DsseEnvelope['signatures'] = [];
  for (const s of e.signatures as unknown[]) {
    const entry = s as Record<string, unknown> | null;
    if (!entry || typeof entry.sig !== 'string') continue;
    signatures.push({ keyid: typeof entry.keyid === 'string' ? entry.keyid : '', sig: entry.sig });
  }
  return { payloadType: e.payloadType, payload: e.payload, signatures };
}

/** Real envelopes carry one or two; more would only make verification slow. */
const MAX_DSSE_SIGNATURES = 16;

/** DSSE v1 pre-authentication encoding. */
export const pae = (type: string, payload: Buffer): Buffer =>
  Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `), payload]);

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

/** Ed25519 signs the message itself; ECDSA (DER signature) and RSA (PKCS#1 v1.5) sign its SHA-256. */
function verifyWithKey(key: KeyObject, data: Buffer, sig: Buffer): boolean {
  try {
    if (key.asymmetricKeyType === 'ed25519') return cryptoVerify(null, data, key, sig);
    if (key.asymmetricKeyType === 'ec') return cryptoVerify('sha256', data, { key, dsaEncoding: 'der' }, sig);
    if (key.asymmetricKeyType === 'rsa') return cryptoVerify('sha256', data, key, sig);
  } catch {
    return false;
  }
  return false;
}

/**
 * Checks an envelope against public keys: at least one of its signatures must verify with one of
 * the keys (an entry whose key ID names another key is skipped). Returns the payload.
 */
export function verifyDsse(env: DsseEnvelope, keys: KeyObject[]): { payload: string; keyIds: string[] } {
  if (keys.length === 0) throw new SifError('key-not-found', 'a DSSE signature needs a public key (--key)');
  if (env.signatures.length > MAX_DSSE_SIGNATURES) throw new SifError('bad-signature', `DSSE envelope holds more than ${MAX_DSSE_SIGNATURES} signatures`);
  const payload = Buffer.from(env.payload, 'base64');
  const message = pae(DSSE_PAYLOAD_TYPE, payload);
  const known = keys.map((key) => ({ key, id: safeKeyId(key) }));
  const keyIds = new Set<string>();
  for (const s of env.signatures) {
    for (const { key, id } of known) {
      if (s.keyid && id && s.keyid !== id) continue;
      if (verifyWithKey(key, message, Buffer.from(s.sig, 'base64'))) keyIds.add(id ?? '');
    }
  }
  if (keyIds.size === 0) throw new SifError('bad-signature', 'no DSSE signature verifies with the given key(s)');
  return { payload: payload.toString('utf8'), keyIds: [...keyIds] };
}

const safeKeyId = (key: KeyObject): string | null => {
  try {
    return sshKeyId(key);
  } catch {
    return null;
  }
};

/** A one-signature DSSE envelope over the metadata, as sigstore's DSSE signer writes it. */
export function dsseEnvelope(metadata: string, key: KeyObject): Buffer {
  const payload = Buffer.from(metadata);
  const message = pae(DSSE_PAYLOAD_TYPE, payload);
  let sig: Buffer;
  if (key.asymmetricKeyType === 'ed25519') sig = cryptoSign(null, message, key);
  else if (key.asymmetricKeyType === 'ec') sig = cryptoSign('sha256', message, { key, dsaEncoding: 'der' });
  else sig = cryptoSign('sha256', message, key);
  const envelope: DsseEnvelope = {
    payloadType: DSSE_PAYLOAD_TYPE,
    payload: payload.toString('base64'),
    signatures: [{ keyid: sshKeyId(createPublicKey(key)), sig: sig.toString('base64') }],
  };
  return Buffer.from(JSON.stringify(envelope));
}
