import * as openpgp from 'openpgp';
import { SifError } from './errors.js';

const BEGIN = '-----BEGIN PGP SIGNED MESSAGE-----';
const MAX_SIGNATURE_PACKETS = 8;

/** Reads an OpenPGP clear-signed message; null if the data is not one. */
export async function readClearSigned(data: Buffer): Promise<openpgp.CleartextMessage | null> {
  const text = data.toString('utf8');
  if (!text.startsWith(BEGIN)) return null;
  try {
    return await openpgp.readCleartextMessage({ cleartextMessage: text });
  } catch {
    return null;
  }
}

export interface PgpIssuer {
  /** 16 upper-case hex, from the issuer key ID subpacket. */
  keyId: string | null;
  /** 40 upper-case hex, from the issuer fingerprint subpacket (newer signers add it). */
  fingerprint: string | null;
}

/** Who the first signature packet says made it. */
export function pgpIssuer(message: openpgp.CleartextMessage): PgpIssuer {
  const packet = (message as unknown as { signature?: openpgp.Signature }).signature?.packets[0];
  const keyId = packet?.issuerKeyID?.toHex().toUpperCase() ?? null;
  const fpr = packet?.issuerFingerprint;
  return {
    keyId: keyId && !/^0+$/.test(keyId) ? keyId : null,
    fingerprint: fpr && fpr.length === 20 ? Buffer.from(fpr).toString('hex').toUpperCase() : null,
  };
}

/** The first candidate key that verifies the message's signature; throws if none does. */
export async function verifyClearSigned(message: openpgp.CleartextMessage, candidates: openpgp.PublicKey[]): Promise<openpgp.PublicKey> {
  const packets = (message as unknown as { signature?: openpgp.Signature }).signature?.packets.length ?? 0;
  // Go signs with one key; each extra packet by the same issuer would cost another verification.
  if (packets > MAX_SIGNATURE_PACKETS) throw new SifError('bad-signature', `clear-signed message holds ${packets} signatures`);
  let lastError = 'signature made by unknown entity';
  // Go's verifier, which Apptainer uses, accepts a key whose self-signature is newer than the
  // signature (a key re-exported or reformatted later); OpenPGP.js needs to be told so.
  const lenient = { allowInsecureVerificationWithReformattedKeys: true };
  for (const key of candidates) {
    for (const config of [undefined, lenient]) {
      try {
        const { signatures } = await openpgp.verify({ message, verificationKeys: key, expectSigned: true, ...(config ? { config } : {}) });
        await signatures[0]!.verified;
        return key;
      } catch (err) {
        lastError = (err as Error).message.replace(/^Error verifying signed message: /, '');
      }
    }
  }
  throw new SifError('bad-signature', lastError);
}

/**
 * A clear-signed message as Go's clearsign encoder writes it: SHA-256, no Comment or Version
 * header (Go's decoder refuses any armor header but Hash), no newline after the END line.
 */
export async function clearSign(text: string, key: openpgp.PrivateKey, date: Date): Promise<Buffer> {
  const armored = await openpgp.sign({
    message: await openpgp.createCleartextMessage({ text }),
    signingKeys: key,
    date,
    config: { preferredHashAlgorithm: openpgp.enums.hash.sha256, showComment: false, showVersion: false },
  });
  return Buffer.from(armored.replace(/\r?\n$/, ''));
}

export const pgpFingerprint = (key: openpgp.PublicKey | openpgp.PrivateKey): string => key.getFingerprint().toUpperCase();

export async function primaryUserId(key: openpgp.PublicKey): Promise<string> {
  const user = await key.getPrimaryUser().catch(() => null);
  return user?.user.userID?.userID ?? key.getUserIDs()[0] ?? '';
}
