import { DomainEvents } from '../events/events.js';
import type { BlobStore } from '../../blobs/store.js';
import type { MetaStore } from '../../meta/store.js';
import { StaticKeys, verifySif, type KeyProvider } from '../../sif/index.js';
import { RangeSource } from './sif-facts.js';

export type SignerState = 'verified' | 'unknown-key' | 'invalid';

export interface SignatureState {
  id: number;
  format: string | null;
  fingerprint: string | null;
  state: SignerState;
  detail?: string;
}

export interface VerificationRecord {
  /** 'unsigned', 'pending' until checked, 'verified' when every signature passed, else 'unverified'. */
  status: 'unsigned' | 'pending' | 'verified' | 'unverified';
  signatures: SignatureState[];
  checkedAt?: string;
}

/**
 * Verifies an image's signatures against the keys Shelf knows, after the upload was
 * acknowledged: it reads the whole image, which must not delay the client's answer.
 */
export class SignatureChecker {
  events: DomainEvents = new DomainEvents();
  /** Keys known to this server; the keyserver supplies them. */
  keys: () => Promise<KeyProvider> = async () => new StaticKeys([], [], 'SHELF');

  constructor(
    private readonly store: MetaStore,
    private readonly blobs: BlobStore,
  ) {}

  async check(imageId: string): Promise<VerificationRecord | null> {
    const image = await this.store.images.byId(imageId);
    if (!image || image.uploaded !== 1) return null;
    const size = await this.blobs.stat(image.digest);
    if (size === null) return null;
    const result = await verifySif(new RangeSource(size, (range) => this.blobs.open(image.digest, range)), await this.keys());
    const record: VerificationRecord = {
      status: result.signatures.length === 0 ? 'unsigned' : result.ok ? 'verified' : 'unverified',
      checkedAt: new Date().toISOString(),
      signatures: result.signatures.map((s) => ({
        id: s.id,
        format: s.format,
        fingerprint: s.signer?.fingerprint ?? null,
        state: s.ok ? 'verified' : s.keyMissing && s.integrity !== 'broken' ? 'unknown-key' : 'invalid',
        ...(s.error ? { detail: s.error } : {}),
      })),
    };
    const before = JSON.parse(image.sif_info) as { verification?: VerificationRecord };
    const info = { ...before, verification: record };
    await this.store.images.setVerification(imageId, record.status === 'verified' ? 1 : 0, JSON.stringify(info));
    const states = (r: VerificationRecord | undefined) => JSON.stringify(r?.signatures.map((x) => [x.fingerprint, x.state]) ?? []);
    if (record.signatures.length && (before.verification?.status !== record.status || states(before.verification) !== states(record))) {
      this.events.emit({
        type: 'signature',
        containerId: image.container_id,
        data: { imageId, digest: image.digest, arch: image.arch, status: record.status, signatures: record.signatures.map((x) => ({ fingerprint: x.fingerprint, state: x.state })) },
      });
    }
    return record;
  }
}
