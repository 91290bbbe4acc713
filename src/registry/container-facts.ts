import type { Kysely } from 'kysely';
import type { Database } from '../meta/schema.js';
import type { VerificationRecord } from './signatures.js';

/** A container's signature state for people: the best state among its images. */
export type SignatureState = 'verified' | 'unknown-key' | 'invalid' | 'unsigned';

/** Best first: a container with one verified image shows verified; only unsigned images, unsigned. */
const RANK: SignatureState[] = ['verified', 'unknown-key', 'invalid', 'unsigned'];

export interface ContainerFacts {
  arches: string[];
  signature: SignatureState;
  /** Size and description of the newest uploaded image. */
  size: number;
  newestDescription: string | null;
  digests: string[];
  archSignatures: Array<{ arch: string | null; signature: SignatureState }>;
}

/** The signature state of one image from its recorded verification. */
export function imageSignature(sifInfo: string, fingerprints: string): SignatureState {
  const v = (JSON.parse(sifInfo) as { verification?: VerificationRecord }).verification;
  if (v?.status === 'verified') return 'verified';
  if (v?.status === 'unverified') return v.signatures.some((s) => s.state === 'invalid') ? 'invalid' : 'unknown-key';
  // Not checked yet: a signed image is not known to verify.
  return (JSON.parse(fingerprints) as string[]).length ? 'unknown-key' : 'unsigned';
}

export const bestSignature = (states: SignatureState[]): SignatureState => RANK.find((r) => states.includes(r)) ?? 'unsigned';

/** Architectures, signature state, newest size and description of each container's uploaded images. */
export async function containerFacts(db: Kysely<Database>, containerIds: string[]): Promise<Map<string, ContainerFacts>> {
  const facts = new Map<string, ContainerFacts>();
  if (!containerIds.length) return facts;
  const rows = await db
    .selectFrom('images')
    .select(['container_id', 'arch', 'size', 'description', 'sif_info', 'fingerprints', 'digest', 'updated_at'])
    .where('container_id', 'in', containerIds)
    .where('uploaded', '=', 1)
    .orderBy('updated_at', 'desc')
    .execute();
  for (const r of rows) {
    const signature = imageSignature(r.sif_info, r.fingerprints);
    let f = facts.get(r.container_id);
    if (!f) {
      f = { arches: [], signature, size: r.size, newestDescription: r.description, digests: [], archSignatures: [] };
      facts.set(r.container_id, f);
    }
    if (r.arch && !f.arches.includes(r.arch)) f.arches.push(r.arch);
    f.digests.push(r.digest);
    f.archSignatures.push({ arch: r.arch, signature });
    f.signature = bestSignature([f.signature, signature]);
  }
  for (const f of facts.values()) f.arches.sort();
  return facts;
}
