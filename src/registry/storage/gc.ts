import type { BlobStore, StoredObject } from '../../blobs/store.js';
import type { MetaStore, Repositories } from '../../meta/store.js';
import { bytesLockName, lockBlobs } from './blob-links.js';
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
 * waiting for its manifest). Sweep: each blob is checked again under the blob lock every link
 * takes (`lockBlobs`) and its row deleted in that transaction; the bytes go after it commits,
 * all of it under the digest's bytes lock, which every commit of bytes holds from before they are
 * written until they are linked (`storeThenLink`). So a concurrent push either finds the bytes
 * gone and stores them anew, or linked them first and the blob stays. Bytes without a row
 * (orphans) are deleted under the bytes lock too, so none that a push is about to link.
 */
export class GarbageCollector {
  private readonly jobs = new OneAtATime<GcReport>();

  constructor(
    private readonly store: MetaStore,
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
    for (const id of await this.store.uploads.expired(before)) {
      report.uploads.push({ name: id, size: (await this.blobs.tempSize(id)) ?? 0 });
      if (!dryRun) await this.uploads.discard(id);
    }
    for (const id of await this.store.uploads.expiredOci(before)) {
      report.uploads.push({ name: id, size: (await this.blobs.tempSize(id)) ?? 0 });
      if (!dryRun) await this.ociBlobs.discard(id);
    }
    // Listed before the sessions are read: a session row always exists before its temporary
    // object, so an object listed here whose session is not found below has none.
    const temps: StoredObject[] = [];
    for await (const t of this.blobs.listTemp()) if (t.modified < strayCutoff) temps.push(t);
    if (temps.length === 0) return;
    const sessions = await this.store.uploads.allSessionIds();
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
    const deadLinks = await this.store.blobLinks.digestsWithDeadLinks(before);
    const unreferenced = await this.store.blobLinks.unreferencedDigests(before);
    const candidates = [...new Set([...deadLinks, ...unreferenced])].sort();
    for (const digest of candidates) {
      if (dryRun) {
        await this.judge(this.store, digest, before, report, false);
        continue;
      }
      await this.store.bytesLocks.run(bytesLockName(digest), async () => {
        const gone = await this.store.transaction(async (tx) => {
          await lockBlobs(tx, [digest]);
          return this.judge(tx, digest, before, report, true);
        });
        // Still under the bytes lock, with no transaction open: no commit can reuse these bytes
        // before they are gone, and with the row gone nothing links them.
        if (gone) await this.blobs.delete(digest);
      });
    }
  }

  /**
   * Removes (or, on a dry run, counts) the dead links of one blob, and the blob's row if nothing
   * holds it; true when the row went (the caller deletes the bytes).
   */
  private async judge(repos: Repositories, digest: string, before: string, report: GcReport, remove: boolean): Promise<boolean> {
    report.links += await repos.blobLinks.dropDeadLinks(digest, before, remove);
    const row = await repos.blobLinks.blob(digest);
    if (!row || row.created_at >= before) return false;
    if (await repos.blobLinks.isLive(digest, before)) return false;
    report.blobs.push({ name: digest, size: row.size });
    if (!remove) return false;
    await repos.blobLinks.deleteBlob(digest);
    return true;
  }

  /** Stored bytes without a row, written before the cutoff. */
  private async sweepOrphans(cutoff: Date, dryRun: boolean, report: GcReport): Promise<void> {
    let batch: StoredObject[] = [];
    const flush = async () => {
      const names = batch.map((o) => o.name);
      const known = await this.store.blobLinks.recordedAmong(names);
      for (const o of batch) {
        if (known.has(o.name)) continue;
        if (dryRun) {
          report.orphans.push({ name: o.name, size: o.size });
          continue;
        }
        await this.store.bytesLocks.run(bytesLockName(o.name), async () => {
          if (await this.store.blobLinks.blob(o.name)) return;
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
