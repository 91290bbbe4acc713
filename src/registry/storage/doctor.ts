import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { parseDigest } from '../../blobs/digest.js';
import type { BlobStore } from '../../blobs/store.js';
import type { Database } from '../../meta/schema.js';
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
    private readonly db: Kysely<Database>,
    private readonly blobs: BlobStore,
  ) {}

  async check(opts: { scrub?: boolean; graceSeconds: number }): Promise<DoctorReport> {
    const report: DoctorReport = { scrubbed: !!opts.scrub, blobs: 0, bytesScrubbed: 0, problems: [] };
    const problem = (kind: ProblemKind, subject: string, detail: string) => report.problems.push({ kind, subject, detail });

    for (let last = ''; ; ) {
      const rows = await this.db.selectFrom('blobs').select(['digest', 'size']).where('digest', '>', last).orderBy('digest').limit(PAGE).execute();
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

    const unrecorded = async (what: string, column: 'i.digest' | 'l.digest' | 'm.digest' | 'r.ref_digest', from: 'images as i' | 'repo_blobs as l' | 'manifests as m' | 'manifest_refs as r') => {
      let q = this.db
        .selectFrom(from as 'images as i')
        .select(sql<string>`${sql.ref(column)}`.as('digest'))
        .distinct()
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('blobs as b').select(sql`1`.as('one')).whereRef('b.digest', '=', sql.ref(column) as never))));
      if (from === 'images as i') q = q.where('i.uploaded', '=', 1);
      for (const r of await q.execute()) problem('unrecorded', r.digest, `${what} refers to it, but no blob is recorded`);
    };
    await unrecorded('an uploaded image', 'i.digest', 'images as i');
    await unrecorded('a repository link', 'l.digest', 'repo_blobs as l');
    await unrecorded('a manifest', 'm.digest', 'manifests as m');
    await unrecorded('a manifest reference', 'r.ref_digest', 'manifest_refs as r');

    const half = await this.db
      .selectFrom('tags')
      .innerJoin('images', 'images.id', 'tags.image_id')
      .select(['tags.name', 'tags.arch', 'images.id'])
      .where('images.uploaded', '=', 0)
      .execute();
    for (const t of half) problem('half-image', `${t.name} (${t.arch})`, `tag points at image ${t.id}, which was never uploaded`);
    const dangling = await this.db
      .selectFrom('oci_tags as t')
      .select(['t.name', 't.manifest_digest'])
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('manifests as m').select(sql`1`.as('one')).whereRef('m.container_id', '=', 't.container_id').whereRef('m.digest', '=', 't.manifest_digest'))),
      )
      .execute();
    for (const t of dangling) problem('dangling-tag', t.name, `OCI tag points at manifest ${t.manifest_digest}, which is not stored`);

    let batch: Array<{ name: string; size: number }> = [];
    const flush = async () => {
      const known = new Set((await this.db.selectFrom('blobs').select('digest').where('digest', 'in', batch.map((o) => o.name)).execute()).map((r) => r.digest));
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
      const sessions = new Set([
        ...(await this.db.selectFrom('uploads').select('id').execute()).map((r) => r.id),
        ...(await this.db.selectFrom('oci_uploads').select('id').execute()).map((r) => r.id),
      ]);
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
