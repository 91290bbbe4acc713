import { createPrivateKey, type KeyObject } from 'node:crypto';
import * as openpgp from 'openpgp';
import { DESCRIPTOR_SIZE, DataType, GROUP_FLAG } from './constants.js';
import { dsseEnvelope } from './dsse.js';
import { SifError } from './errors.js';
import { groupIds, readSif, type SifImage } from './image.js';
import { groupMetadata } from './integrity.js';
import { clearSign, pgpFingerprint } from './pgp.js';
import { FileSource } from './source.js';

export type SigningKey = { kind: 'pgp'; key: openpgp.PrivateKey } | { kind: 'dsse'; key: KeyObject };

/** An armored OpenPGP private key (unencrypted, or with `passphrase`) or a PEM private key (PKCS#8/PKCS#1/SEC1). */
export async function readSigningKey(text: string, passphrase?: string): Promise<SigningKey> {
  if (text.includes('-----BEGIN PGP PRIVATE KEY BLOCK-----')) {
    let key: openpgp.PrivateKey;
    try {
      key = await openpgp.readPrivateKey({ armoredKey: text });
      if (!key.isDecrypted()) {
        if (!passphrase) throw new Error('the OpenPGP key is protected by a passphrase');
        key = await openpgp.decryptKey({ privateKey: key, passphrase });
      }
    } catch (err) {
      throw new SifError('bad-key', `not a usable OpenPGP private key: ${(err as Error).message}`);
    }
    // The descriptor holds a 20-byte fingerprint: only v4 keys have one.
    if (key.keyPacket.version !== 4) throw new SifError('bad-key', 'SIF signatures need an OpenPGP v4 key');
    return { kind: 'pgp', key };
  }
  if (text.includes('-----BEGIN PGP')) throw new SifError('bad-key', 'an OpenPGP public key cannot sign');
  try {
    const key = createPrivateKey(passphrase ? { key: text, passphrase } : text);
    if (!['ed25519', 'ec', 'rsa'].includes(key.asymmetricKeyType ?? '')) throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
    return { kind: 'dsse', key };
  } catch (err) {
    throw new SifError('bad-key', `not a PEM private key: ${(err as Error).message}`);
  }
}

export interface SignResult {
  /** Object IDs of the new signature objects, one per group. */
  signatureIds: number[];
  groups: number[];
  /** PGP: the signer's primary key fingerprint; DSSE: null. */
  fingerprint: string | null;
}

/**
 * Signs every object group of the image in place, as `apptainer sign` does: one signature object
 * per group, appended after the data, linked to the group. Objects are hashed by streaming.
 * Each signature's data is written first, then its descriptor, then the header, flushed in
 * between, so a crash leaves the file readable.
 */
export async function signSif(path: string, key: SigningKey, now = new Date()): Promise<SignResult> {
  const file = await FileSource.open(path, 'r+');
  try {
    const image = await readSif(file);
    const groups = groupIds(image);
    if (groups.length === 0) throw new SifError('bad-descriptor', 'the image has no object group to sign');
    if (image.freeSlots.length < groups.length) throw new SifError('no-free-descriptor', 'no free descriptor left for a signature');
    // Every group's metadata is computed before anything is added.
    const metadata = new Map<number, string>();
    for (const g of groups) metadata.set(g, await groupMetadata(file, image, g));
    const fingerprint = key.kind === 'pgp' ? pgpFingerprint(key.key) : null;
    const signatureIds: number[] = [];
    const state = { dataSize: image.header.dataSize, free: image.header.descriptorsFree };
    const taken = new Set(image.descriptors.map((d) => d.id));
    for (const g of groups) {
      const text = metadata.get(g)!;
      const data = key.kind === 'pgp' ? await clearSign(text, key.key, now) : dsseEnvelope(text, key.key);
      const slot = image.freeSlots.shift()!;
      // Writers number objects by slot; an image renumbered by hand gets the next unused ID.
      const id = taken.has(slot + 1) ? Math.max(...taken) + 1 : slot + 1;
      taken.add(id);
      const offset = image.header.dataOffset + state.dataSize;
      await file.write(data, offset);
      await file.sync();
      await file.write(descriptorRecord(id, g, offset, data.length, fingerprint, now), image.header.descriptorsOffset + slot * DESCRIPTOR_SIZE);
      state.dataSize += data.length;
      state.free -= 1;
      await file.write(headerRecord(image, state.dataSize, state.free, now), 0);
      await file.sync();
      signatureIds.push(id);
    }
    return { signatureIds, groups, fingerprint };
  } finally {
    await file.close();
  }
}

function descriptorRecord(id: number, group: number, offset: number, size: number, fingerprint: string | null, now: Date): Buffer {
  const r = Buffer.alloc(DESCRIPTOR_SIZE);
  const seconds = BigInt(Math.floor(now.getTime() / 1000));
  r.writeInt32LE(DataType.Signature, 0);
  r[4] = 1;
  r.writeUInt32LE(id, 5);
  r.writeUInt32LE(GROUP_FLAG >>> 0, 9); // no group
  r.writeUInt32LE((GROUP_FLAG | group) >>> 0, 13); // linked to the group
  r.writeBigInt64LE(BigInt(offset), 17);
  r.writeBigInt64LE(BigInt(size), 25);
  r.writeBigInt64LE(BigInt(size), 33);
  r.writeBigInt64LE(seconds, 41);
  r.writeBigInt64LE(seconds, 49);
  r.writeInt32LE(1, 201); // hash type SHA-256
  if (fingerprint) Buffer.from(fingerprint, 'hex').copy(r, 205);
  return r;
}

function headerRecord(image: SifImage, dataSize: number, free: number, now: Date): Buffer {
  const h = Buffer.from(image.header.raw);
  h.writeBigInt64LE(BigInt(Math.floor(now.getTime() / 1000)), 72);
  h.writeBigInt64LE(BigInt(free), 80);
  h.writeBigInt64LE(BigInt(dataSize), 120);
  return h;
}
