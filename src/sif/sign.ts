import { createPrivateKey, createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import * as openpgp from 'openpgp';
import { DESCRIPTOR_SIZE, DSSE_PAYLOAD_TYPE, DataType, GROUP_FLAG } from './constants.js';
import { SifError } from './errors.js';
import { readSif, type SifImage } from './format.js';
import { groupIds, groupMetadata } from './integrity.js';
import { sshKeyId } from './keys.js';
import { FileSource } from './source.js';
import { pae } from './verify.js';

export type SigningKey = { kind: 'pgp'; key: openpgp.PrivateKey } | { kind: 'dsse'; key: KeyObject };

/** An armored OpenPGP private key (unencrypted, or with `passphrase`) or a PEM private key (PKCS#8/PKCS#1/SEC1). */
export async function readSigningKey(text: string, passphrase?: string): Promise<SigningKey> {
  if (text.includes('-----BEGIN PGP PRIVATE KEY BLOCK-----')) {
    let key: openpgp.PrivateKey;
    try {
      key = await openpgp.readPrivateKey({ armoredKey: text });
    } catch (err) {
      throw new SifError('bad-key', `not an OpenPGP private key: ${(err as Error).message}`);
    }
    if (!key.isDecrypted()) {
      if (!passphrase) throw new SifError('bad-key', 'the OpenPGP key is protected by a passphrase');
      key = await openpgp.decryptKey({ privateKey: key, passphrase });
    }
    if (key.keyPacket.version !== 4) throw new SifError('bad-key', 'SIF signatures need an OpenPGP v4 key');
    return { kind: 'pgp', key };
  }
  try {
    const key = createPrivateKey(passphrase ? { key: text, passphrase } : text);
    if (!['ed25519', 'ec', 'rsa'].includes(key.asymmetricKeyType ?? '')) throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
    return { kind: 'dsse', key };
  } catch (err) {
    throw new SifError('bad-key', `not a PEM private key: ${(err as Error).message}`);
  }
}

function dsseSign(key: KeyObject, data: Buffer): Buffer {
  if (key.asymmetricKeyType === 'ed25519') return cryptoSign(null, data, key);
  if (key.asymmetricKeyType === 'ec') return cryptoSign('sha256', data, { key, dsaEncoding: 'der' });
  return cryptoSign('sha256', data, key);
}

async function signatureObject(metadata: string, key: SigningKey): Promise<{ data: Buffer; fingerprint: Buffer | null }> {
  if (key.kind === 'pgp') {
    const message = await openpgp.createCleartextMessage({ text: metadata });
    const armored = await openpgp.sign({
      message,
      signingKeys: key.key,
      config: { preferredHashAlgorithm: openpgp.enums.hash.sha256, showComment: false, showVersion: false },
    });
    // Go writes no newline after the END line.
    return { data: Buffer.from(armored.replace(/\r?\n$/, '')), fingerprint: Buffer.from(key.key.getFingerprint(), 'hex') };
  }
  const payload = Buffer.from(metadata);
  const publicKey = createPublicKey(key.key);
  const envelope = {
    payloadType: DSSE_PAYLOAD_TYPE,
    payload: payload.toString('base64'),
    signatures: [{ keyid: sshKeyId(publicKey), sig: dsseSign(key.key, pae(DSSE_PAYLOAD_TYPE, payload)).toString('base64') }],
  };
  return { data: Buffer.from(JSON.stringify(envelope)), fingerprint: null };
}

export interface SignResult {
  /** Object IDs of the new signature objects, one per group. */
  signatureIds: number[];
  groups: number[];
  fingerprint: string | null;
}

/**
 * Signs every object group of the image in place, as `apptainer sign` does: one signature object
 * per group, appended after the data, linked to the group. Each object is written first, then its
 * descriptor, then the header, each flushed, so a crash leaves the file readable.
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
    const signatureIds: number[] = [];
    let fingerprint: string | null = null;
    const state = { dataSize: image.header.dataSize, free: image.header.descriptorsFree };
    for (const g of groups) {
      const { data, fingerprint: fp } = await signatureObject(metadata.get(g)!, key);
      fingerprint = fp ? fp.toString('hex').toUpperCase() : null;
      const slot = image.freeSlots.shift()!;
      const id = slot + 1;
      if (image.descriptors.some((d) => d.id === id)) throw new SifError('bad-descriptor', `object ID ${id} is taken`);
      const offset = image.header.dataOffset + state.dataSize;
      await writeAll(file, data, offset);
      await file.fileHandle.sync();
      await writeAll(file, descriptorRecord(id, g, offset, data.length, fp, now), image.header.descriptorsOffset + slot * DESCRIPTOR_SIZE);
      state.dataSize += data.length;
      state.free -= 1;
      await writeAll(file, headerRecord(image, state.dataSize, state.free, now), 0);
      await file.fileHandle.sync();
      signatureIds.push(id);
    }
    return { signatureIds, groups, fingerprint };
  } finally {
    await file.close();
  }
}

async function writeAll(file: FileSource, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await file.fileHandle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

function descriptorRecord(id: number, group: number, offset: number, size: number, fingerprint: Buffer | null, now: Date): Buffer {
  const r = Buffer.alloc(DESCRIPTOR_SIZE);
  const seconds = BigInt(Math.floor(now.getTime() / 1000));
  r.writeInt32LE(DataType.Signature, 0);
  r[4] = 1;
  r.writeUInt32LE(id, 5);
  r.writeUInt32LE(GROUP_FLAG >>> 0, 9);
  r.writeUInt32LE((GROUP_FLAG | group) >>> 0, 13);
  r.writeBigInt64LE(BigInt(offset), 17);
  r.writeBigInt64LE(BigInt(size), 25);
  r.writeBigInt64LE(BigInt(size), 33);
  r.writeBigInt64LE(seconds, 41);
  r.writeBigInt64LE(seconds, 49);
  r.writeInt32LE(1, 201); // hash type SHA-256
  fingerprint?.copy(r, 205);
  return r;
}

function headerRecord(image: SifImage, dataSize: number, free: number, now: Date): Buffer {
  const h = Buffer.from(image.header.raw);
  h.writeBigInt64LE(BigInt(Math.floor(now.getTime() / 1000)), 72);
  h.writeBigInt64LE(BigInt(free), 80);
  h.writeBigInt64LE(BigInt(dataSize), 120);
  return h;
}
