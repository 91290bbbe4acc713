import * as openpgp from 'openpgp';

const SIG = openpgp.enums.signature;
const CERTIFICATIONS = new Set<number>([SIG.certGeneric, SIG.certPersona, SIG.certCasual, SIG.certPositive]);

type Packet = openpgp.PublicKeyPacket | openpgp.PublicSubkeyPacket | openpgp.UserIDPacket | openpgp.UserAttributePacket | openpgp.SignaturePacket;

/** What a cleaned key holds, to tell which parts an update adds. */
export interface KeyParts {
  userIds: Set<string>;
  subkeys: Set<string>;
}

/**
 * A public key reduced to what its own primary key vouches for: its direct and revocation
 * signatures, user IDs (and attributes) with at least one self-certification, and subkeys with a
 * binding signature, each with only the self-made signatures and revocations that verify.
 * Third-party certifications and anything unsigned are dropped: nobody can attach a user ID or a
 * subkey to a key they do not hold, and a key grows only by what its holder signed.
 */
export async function cleanKey(key: openpgp.PublicKey): Promise<openpgp.PublicKey> {
  const primary = key.keyPacket as openpgp.PublicKeyPacket;
  const verifies = async (sig: openpgp.SignaturePacket, type: number, data: object): Promise<boolean> => {
    if (sig.signatureType !== type) return false;
    try {
      // No date: a signature counts as made; its expiry is judged by the verifier later.
      await sig.verify(primary, type, data, null as unknown as Date);
      return true;
    } catch {
      return false;
    }
  };
  const keep = async (sigs: openpgp.SignaturePacket[], data: object, types: Iterable<number>): Promise<openpgp.SignaturePacket[]> => {
    const allowed = [...types];
    const out: openpgp.SignaturePacket[] = [];
    for (const sig of sigs) {
      if (sig.signatureType !== null && allowed.includes(sig.signatureType) && (await verifies(sig, sig.signatureType, data))) out.push(sig);
    }
    return out;
  };

  const packets: Packet[] = [primary];
  packets.push(...(await keep(key.revocationSignatures, { key: primary }, [SIG.keyRevocation])));
  const direct = (key as unknown as { directSignatures?: openpgp.SignaturePacket[] }).directSignatures ?? [];
  packets.push(...(await keep(direct, { key: primary }, [SIG.key])));
  for (const user of key.users) {
    const data = { userID: user.userID, userAttribute: user.userAttribute, key: primary };
    const certs = await keep(user.selfCertifications, data, CERTIFICATIONS);
    if (certs.length === 0) continue;
    packets.push((user.userID ?? user.userAttribute)!, ...certs, ...(await keep(user.revocationSignatures, data, [SIG.certRevocation])));
  }
  for (const subkey of key.subkeys) {
    const data = { key: primary, bind: subkey.keyPacket };
    const bindings = await keep(subkey.bindingSignatures, data, [SIG.subkeyBinding]);
    if (bindings.length === 0) continue;
    packets.push(subkey.keyPacket as openpgp.PublicSubkeyPacket, ...bindings, ...(await keep(subkey.revocationSignatures, data, [SIG.subkeyRevocation])));
  }
  const list = new openpgp.PacketList<Packet>();
  list.push(...packets);
  return new openpgp.PublicKey(list as openpgp.PacketList<openpgp.AnyPacket>);
}

/** The user IDs and subkeys of a (cleaned) key. */
export function partsOf(key: openpgp.PublicKey): KeyParts {
  return {
    userIds: new Set(key.users.map((u) => (u.userID ? `uid:${u.userID.userID}` : `attr:${Buffer.from(u.userAttribute!.write()).toString('base64')}`))),
    subkeys: new Set(key.subkeys.map((s) => s.getFingerprint())),
  };
}

/** User IDs and subkeys in `after` that `before` did not have. */
export function addedParts(before: KeyParts, after: KeyParts): string[] {
  return [...[...after.userIds].filter((u) => !before.userIds.has(u)), ...[...after.subkeys].filter((s) => !before.subkeys.has(s)).map((s) => `subkey ${s}`)];
}
