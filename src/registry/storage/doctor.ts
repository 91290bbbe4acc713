import { createHash } from 'node:crypto';
import { parseDigest } from '../../blobs/digest.js';
import type { BlobStore } from '../../blobs/store.js';
import type { MetaStore } from '../../meta/store.js';
import { STRAY_AFTER } from './gc.js';

export type ProblemKind =
  /** A blob row whose bytes are not in the store. */
  | 'missing'
  | 'size-mismatch'
  | 'digest-mismatch'
  /** Something refers to a digest that has no blob row. */
  | 'unrecorded'
  /** Bytes in the store without a blob row. */
  | 'orphan'
  /** A temporary object of no upload session, older than the grace period. */
  | 'stale-upload'
  /** A Library tag on an image whose upload never completed. */
  | 'half-image'
  /** An OCI tag on a manifest that is not stored. */
  | 'dangling-tag';

export interface Problem {
  kind: ProblemKind;
  /** The digest, upload ID or tag concerned. */
  subject: string;
  detail: string;
}

export interface DoctorReport {
  scrubbed: boolean;
  blobs: number;
  /** Bytes re-hashed by a scrub. */
  bytesScrubbed: number;
  problems: Problem[];
}

const PAGE = 1000;

/** Metadata ↔ store consistency: every recorded blob stored whole, every reference recorded, no stray bytes. */
export class Doctor {
  constructor(
    private readonly store: MetaStore,
    private readonly blobs: BlobStore,
  ) {}

  async check(opts: { scrub?: boolean; graceSeconds: number }): Promise<DoctorReport> {
    const report: DoctorReport = { scrubbed: !!opts.scrub, blobs: 0, bytesScrubbed: 0, problems: [] };
    const problem = (kind: ProblemKind, subject: string, detail: string) => report.problems.push({ kind, subject, detail });

    for (let last = ''; ; ) {
      const rows = await this.store.blobLinks.blobsAfter(last, PAGE);
      if (rows.length === 0) break;
      last = rows[rows.length - 1]!.digest;
      for (const row of rows) {
        report.blobs++;
        const size = await this.blobs.stat(row.digest);
        if (size === null) {
          problem('missing', row.digest, 'recorded, but its bytes are not in the store');
          continue;
        }
        if (size !== row.size) {
          problem('size-mismatch', row.digest, `recorded with ${row.size} bytes, the store holds ${size}`);
          continue;
        }
        if (opts.scrub) {
          const actual = await this.hash(row.digest);
          report.bytesScrubbed += size;
          if (actual !== row.digest) problem('digest-mismatch', row.digest, `the stored bytes hash to ${actual}`);
        }
      }
    }

    for (const r of await this.store.blobLinks.unrecordedReferences()) problem('unrecorded', r.digest, `${r.what} refers to it, but no blob is recorded`);
    for (const t of await this.store.blobLinks.halfImageTags()) problem('half-image', `${t.name} (${t.arch})`, `tag points at image ${t.id}, which was never uploaded`);
    for (const t of await this.store.blobLinks.danglingOciTags()) problem('dangling-tag', t.name, `OCI tag points at manifest ${t.manifest_digest}, which is not stored`);

    let batch: Array<{ name: string; size: number }> = [];
    const flush = async () => {
      const known = await this.store.blobLinks.recordedAmong(batch.map((o) => o.name));
      for (const o of batch) if (!known.has(o.name)) problem('orphan', o.name, `${o.size} bytes stored, no blob recorded`);
      batch = [];
    };
    for await (const o of this.blobs.list()) {
      batch.push(o);
      if (batch.length >= PAGE) await flush();
    }
    if (batch.length) await flush();

    const cutoff = new Date(Date.now() - Math.max(opts.graceSeconds, STRAY_AFTER) * 1000);
    const stale = [];
    for await (const t of this.blobs.listTemp()) if (t.modified < cutoff) stale.push(t);
    if (stale.length) {
      const sessions = await this.store.uploads.allSessionIds();
      for (const t of stale) if (!sessions.has(t.name)) problem('stale-upload', t.name, `${t.size} bytes of upload data of no upload session`);
    }
    return report;
  }

  private async hash(digest: string): Promise<string> {
    const parsed = parseDigest(digest);
    if (!parsed) return 'an invalid digest';
    const hash = createHash(parsed.algorithm);
    for await (const chunk of await this.blobs.open(digest)) hash.update(chunk as Buffer);
    return `${parsed.algorithm}:${hash.digest('hex')}`;
  }
}
