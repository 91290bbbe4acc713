import { sql, type ExpressionBuilder, type Kysely } from 'kysely';
import type { BlobStore, StoredObject } from '../../blobs/store.js';
import type { Dialect } from '../../meta/db.js';
import type { Database } from '../../meta/schema.js';
import { lockBlobs } from './blob-links.js';
import type { OciBlobs } from '../oci/oci-blobs.js';
import type { Uploads } from './uploads.js';
import { OneAtATime } from '../util.js';

export interface GcOptions {
  /** Report what would go, remove nothing. */
  dryRun?: boolean;
  /** Seconds: nothing linked, written or expired more recently than this is touched. */
  graceSeconds: number;
  /**
   * Seconds since its last write before a temporary object of no session counts as stray,
   * whatever the grace period: a blob store's own short-lived temporary objects (a manifest
   * being stored) have no session. Default 10.
   */
  strayAfterSeconds?: number;
}

export interface GcItem {
  /** A digest, or the ID of an upload or temporary object. */
  name: string;
  size: number;
}

export interface GcReport {
  dryRun: boolean;
  /** Blobs no image, manifest or repository refers to: their rows and bytes. */
  blobs: GcItem[];
  /** Stored bytes without a metadata row (left by a crash between commit and record). */
  orphans: GcItem[];
  /** Upload sessions past their expiry (Library and OCI), with their bytes. */
  uploads: GcItem[];
  /** Temporary objects of no upload session (left by a crash or a broken connection). */
  temps: GcItem[];
  /** Repository links of blobs that nothing in the repository refers to any more. */
  links: number;
  bytesFreed: number;
}

const BATCH = 500;
export const STRAY_AFTER = 10;

/**
 * Online garbage collection. Mark: a blob is live while an uploaded image, a manifest, a
 * manifest's reference or a repository link holds it; a repository link is live while the
 * repository refers to the blob, or while it is younger than the grace period (a pushed blob
 * waiting for its manifest). Sweep: each blob is checked again and deleted, row before
 * commit and bytes before the lock goes, under the blob lock every commit and link takes
 * (`lockBlobs`), so a concurrent push either sees the bytes gone and stores them anew or
 * made its reference first and the blob stays.
 */
export class GarbageCollector {
  private readonly jobs = new OneAtATime<GcReport>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Dialect,
    private readonly blobs: BlobStore,
    private readonly uploads: Uploads,
    private readonly ociBlobs: OciBlobs,
  ) {}

  /** Resolves when no collection runs in this process. */
  idle(): Promise<void> {
    return this.jobs.idle();
  }

  /** One collection; a call while one runs in this process waits for it and runs afresh. */
  run(opts: GcOptions): Promise<GcReport> {
    return this.jobs.run(() => this.collect(opts));
  }

  private async collect(opts: GcOptions): Promise<GcReport> {
    const dryRun = !!opts.dryRun;
    const cutoff = new Date(Date.now() - opts.graceSeconds * 1000);
    const report: GcReport = { dryRun, blobs: [], orphans: [], uploads: [], temps: [], links: 0, bytesFreed: 0 };
    const strayCutoff = new Date(Math.min(cutoff.getTime(), Date.now() - (opts.strayAfterSeconds ?? STRAY_AFTER) * 1000));
    await this.sweepUploads(cutoff, strayCutoff, dryRun, report);
    await this.sweepBlobs(cutoff, dryRun, report);
    await this.sweepOrphans(cutoff, dryRun, report);
    report.bytesFreed = [...report.blobs, ...report.orphans, ...report.uploads, ...report.temps].reduce((n, i) => n + i.size, 0);
    return report;
  }

  /** Expired sessions, then temporary objects no session owns. */
  private async sweepUploads(cutoff: Date, strayCutoff: Date, dryRun: boolean, report: GcReport): Promise<void> {
    const before = cutoff.toISOString();
    const library = await this.db.selectFrom('uploads').select('id').where('expires_at', '<', before).execute();
    for (const { id } of library) {
      report.uploads.push({ name: id, size: (await this.blobs.tempSize(id)) ?? 0 });
      if (!dryRun) await this.uploads.discard(id);
    }
    const oci = await this.db.selectFrom('oci_uploads').select('id').where('expires_at', '<', before).execute();
    for (const { id } of oci) {
      report.uploads.push({ name: id, size: (await this.blobs.tempSize(id)) ?? 0 });
      if (!dryRun) await this.ociBlobs.discard(id);
    }
    // Listed before the sessions are read: a session row always exists before its temporary
    // object, so an object listed here whose session is not found below has none.
    const temps: StoredObject[] = [];
    for await (const t of this.blobs.listTemp()) if (t.modified < strayCutoff) temps.push(t);
    if (temps.length === 0) return;
    const sessions = new Set<string>();
    for (const r of await this.db.selectFrom('uploads').select('id').execute()) sessions.add(r.id);
    for (const r of await this.db.selectFrom('oci_uploads').select('id').execute()) sessions.add(r.id);
    for (const t of temps) {
      if (sessions.has(t.name)) continue;
      if (report.uploads.some((u) => u.name === t.name)) continue;
      report.temps.push({ name: t.name, size: t.size });
      if (!dryRun) await this.blobs.deleteTemp(t.name);
    }
  }

  /** Dead repository links and unreferenced blobs, each decided again under its blob lock. */
  private async sweepBlobs(cutoff: Date, dryRun: boolean, report: GcReport): Promise<void> {
    const before = cutoff.toISOString();
    const deadLinks = await this.db
      .selectFrom('repo_blobs as l')
      .select('l.digest')
      .distinct()
      .where('l.created_at', '<', before)
      .where((eb) => eb.not(linkReferenced(eb)))
      .execute();
    const unreferenced = await this.db
      .selectFrom('blobs as b')
      .select('b.digest')
      .where('b.created_at', '<', before)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('repo_blobs as l').select(sql`1`.as('one')).whereRef('l.digest', '=', 'b.digest'))))
      .where((eb) => eb.not(blobReferenced(eb)))
      .execute();
    const candidates = [...new Set([...deadLinks.map((r) => r.digest), ...unreferenced.map((r) => r.digest)])].sort();
    for (const digest of candidates) {
      if (dryRun) {
        await this.judge(this.db, digest, before, report, false);
        continue;
      }
      await this.db.transaction().execute(async (trx) => {
        await lockBlobs(trx, this.dialect, [digest]);
        await this.judge(trx, digest, before, report, true);
      });
    }
  }

  /** Removes (or, on a dry run, counts) the dead links of one blob, and the blob itself if nothing holds it. */
  private async judge(db: Kysely<Database>, digest: string, before: string, report: GcReport, remove: boolean): Promise<void> {
    const dead = db
      .selectFrom('repo_blobs as l')
      .where('l.digest', '=', digest)
      .where('l.created_at', '<', before)
      .where((eb) => eb.not(linkReferenced(eb)));
    if (remove) {
      const res = await db.deleteFrom('repo_blobs').where('digest', '=', digest).where('container_id', 'in', dead.select('l.container_id')).executeTakeFirst();
      report.links += Number(res.numDeletedRows);
    } else {
      report.links += Number((await dead.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    }
    const row = await db.selectFrom('blobs').select(['size', 'created_at']).where('digest', '=', digest).executeTakeFirst();
    if (!row || row.created_at >= before) return;
    const live = await db
      .selectFrom('repo_blobs as l')
      .select('l.container_id')
      .where('l.digest', '=', digest)
      .where((eb) => eb.or([eb('l.created_at', '>=', before), linkReferenced(eb)]))
      .executeTakeFirst();
    if (live) return;
    const held = await db.selectFrom('blobs as b').select('b.digest').where('b.digest', '=', digest).where((eb) => blobReferenced(eb)).executeTakeFirst();
    if (held) return;
    report.blobs.push({ name: digest, size: row.size });
    if (!remove) return;
    await db.deleteFrom('blobs').where('digest', '=', digest).execute();
    // Still under the lock: no commit can reuse these bytes before they are gone.
    await this.blobs.delete(digest);
  }

  /** Stored bytes without a row, written before the cutoff. */
  private async sweepOrphans(cutoff: Date, dryRun: boolean, report: GcReport): Promise<void> {
    let batch: StoredObject[] = [];
    const flush = async () => {
      const names = batch.map((o) => o.name);
      const known = new Set((await this.db.selectFrom('blobs').select('digest').where('digest', 'in', names).execute()).map((r) => r.digest));
      for (const o of batch) {
        if (known.has(o.name)) continue;
        if (dryRun) {
          report.orphans.push({ name: o.name, size: o.size });
          continue;
        }
        await this.db.transaction().execute(async (trx) => {
          await lockBlobs(trx, this.dialect, [o.name]);
          if (await trx.selectFrom('blobs').select('digest').where('digest', '=', o.name).executeTakeFirst()) return;
          report.orphans.push({ name: o.name, size: o.size });
          await this.blobs.delete(o.name);
        });
      }
      batch = [];
    };
    for await (const o of this.blobs.list()) {
      if (o.modified >= cutoff) continue;
      batch.push(o);
      if (batch.length >= BATCH) await flush();
    }
    if (batch.length) await flush();
  }
}

type LinkScope = ExpressionBuilder<Database & { l: Database['repo_blobs'] }, 'l'>;
type BlobScope = ExpressionBuilder<Database & { b: Database['blobs'] }, 'b'>;

/** The repository of link `l` refers to its blob: an uploaded image, a manifest, or a manifest's reference. */
function linkReferenced(eb: LinkScope) {
  return eb.or([
    eb.exists(
      eb
        .selectFrom('images as i')
        .select(sql`1`.as('one'))
        .whereRef('i.container_id', '=', 'l.container_id')
        .whereRef('i.digest', '=', 'l.digest')
        .where('i.uploaded', '=', 1),
    ),
    eb.exists(eb.selectFrom('manifests as m').select(sql`1`.as('one')).whereRef('m.container_id', '=', 'l.container_id').whereRef('m.digest', '=', 'l.digest')),
    eb.exists(
      eb.selectFrom('manifest_refs as r').select(sql`1`.as('one')).whereRef('r.container_id', '=', 'l.container_id').whereRef('r.ref_digest', '=', 'l.digest'),
    ),
  ]);
}

/** Something anywhere refers to blob `b` other than a repository link. */
function blobReferenced(eb: BlobScope) {
  return eb.or([
    eb.exists(eb.selectFrom('images as i').select(sql`1`.as('one')).whereRef('i.digest', '=', 'b.digest').where('i.uploaded', '=', 1)),
    eb.exists(eb.selectFrom('manifests as m').select(sql`1`.as('one')).whereRef('m.digest', '=', 'b.digest')),
    eb.exists(eb.selectFrom('manifest_refs as r').select(sql`1`.as('one')).whereRef('r.ref_digest', '=', 'b.digest')),
    // A remote build's uploaded context (kept until it expires).
    eb.exists(eb.selectFrom('build_contexts as x').select(sql`1`.as('one')).whereRef('x.digest', '=', 'b.digest').where('x.uploaded', '=', 1)),
  ]);
}
