import type { MetaStore } from '../../meta/store.js';
import { SYSTEM, type Principal } from '../accounts/accounts.js';
import type { Audit } from '../accounts/audit.js';
import type { ImageRow, Images } from '../images/images.js';
import { isImageHash } from '../namespaces/names.js';
import type { Container, Namespaces } from '../namespaces/namespaces.js';
import { containerPath, type Policies, type ScopedPolicy } from '../namespaces/policies.js';
import type { TagLocks } from '../namespaces/tag-locks.js';
import { OneAtATime } from '../util.js';

export interface RetentionItem {
  /** `entity/collection/container`. */
  container: string;
  imageId: string;
  /** `sha256:<hex>` of the SIF. */
  digest: string;
  arch: string | null;
  size: number;
  /** Push time. */
  createdAt: string;
  /** Why it goes: beyond the newest N, or untagged for longer than allowed. */
  reason: string;
  /** The scope whose policy decided (`entity[/collection[/container]]`). */
  policy: string;
}

export interface RetentionReport {
  dryRun: boolean;
  /** Images removed (or, on a dry run, that would be). */
  images: RetentionItem[];
  /** Containers a retention rule applies to. */
  containers: number;
  bytes: number;
}

const human = (seconds: number): string =>
  seconds % 86400 === 0 ? `${seconds / 86400}d` : seconds % 3600 === 0 ? `${seconds / 3600}h` : seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`;

/**
 * Retention: per container whose effective policy has a rule, the uploaded images that go.
 * Never one of the newest `keepNewest` (by push time), never a tagged image (a Library tag or an
 * OCI tag other than a by-hash one), never a verified-signed one under `keepSigned`. Of the rest,
 * with `keepNewest` every image goes; with `dropUntaggedAfter` only those older than that; with
 * both, an image goes when it is beyond the newest N and older than the age.
 */
export class Retention {
  private readonly jobs = new OneAtATime<RetentionReport>();

  constructor(
    private readonly store: MetaStore,
    private readonly namespaces: Namespaces,
    private readonly images: Images,
    private readonly policies: Policies,
    private readonly tagLocks: TagLocks,
    private readonly audit: Audit,
  ) {}

  /** One pass; a call while one runs in this process waits for it and runs afresh. */
  run(opts: { dryRun: boolean; principal?: Principal | null }): Promise<RetentionReport> {
    return this.jobs.run(() => this.pass(opts.dryRun, opts.principal ?? SYSTEM));
  }

  private async pass(dryRun: boolean, principal: Principal): Promise<RetentionReport> {
    const report: RetentionReport = { dryRun, images: [], containers: 0, bytes: 0 };
    const rows = (await this.policies.retentionScopes()).filter((r) => r.keep_newest !== null || r.drop_untagged_after !== null);
    if (rows.length === 0) return report;
    const scopes = rows.map((r) => r.scope_id);
    // Every container under a scope with a rule (its own policy may still be without one).
    const containers = await this.store.policies.containersUnder(scopes);
    for (const id of containers) {
      const container = await this.namespaces.getContainerById(SYSTEM, id).catch(() => null);
      if (!container) continue;
      const policy = await this.policies.effectiveFor(container);
      if (!policy || (policy.keepNewest === null && policy.dropUntaggedAfter === null)) continue;
      report.containers += 1;
      for (const item of await this.judge(container, policy)) {
        if (dryRun) {
          report.images.push(item);
          continue;
        }
        const removed = await this.tagLocks.run(container.id, async () => {
          // Decided again under the lock: a tag set meanwhile keeps the image.
          if ((await this.taggedIds(container.id)).has(item.imageId)) return false;
          if (!(await this.images.byId(item.imageId))) return false;
          await this.images.removeUnlocked(container.id, item.imageId, []);
          return true;
        });
        if (!removed) continue;
        report.images.push(item);
        await this.audit.record(principal, 'retention-delete', `/v1/images/${item.container}:sha256.${item.digest.slice(7)}`, null);
      }
    }
    report.bytes = report.images.reduce((n, i) => n + i.size, 0);
    return report;
  }

  /** What the policy removes from one container now. */
  private async judge(container: Container, policy: ScopedPolicy): Promise<RetentionItem[]> {
    const images: ImageRow[] = await this.store.images.uploadedNewestFirst(container.id);
    const tagged = await this.taggedIds(container.id);
    const now = Date.now();
    const out: RetentionItem[] = [];
    images.forEach((image, rank) => {
      if (policy.keepNewest !== null && rank < policy.keepNewest) return;
      if (tagged.has(image.id)) return;
      if (policy.keepSigned && image.signed === 1) return;
      const age = (now - Date.parse(image.created_at)) / 1000;
      if (policy.dropUntaggedAfter !== null && age <= policy.dropUntaggedAfter) return;
      const reasons = [];
      if (policy.keepNewest !== null) reasons.push(`not among the newest ${policy.keepNewest}`);
      if (policy.dropUntaggedAfter !== null) reasons.push(`untagged for more than ${human(policy.dropUntaggedAfter)}`);
      out.push({
        container: containerPath(container),
        imageId: image.id,
        digest: image.digest,
        arch: image.arch,
        size: Number(image.size),
        createdAt: image.created_at,
        reason: reasons.join(', '),
        policy: policy.path,
      });
    });
    return out;
  }

  /** Images of the container a Library tag, or an OCI tag a user gave, names (directly or through an index). */
  private async taggedIds(containerId: string): Promise<Set<string>> {
    const ids = new Set(await this.store.images.taggedImageIds(containerId));
    const ociTags = (await this.store.images.ociTagsOf(containerId)).filter((t) => !isImageHash(t.name));
    if (ociTags.length === 0) return ids;
    const digests = [...new Set(ociTags.map((t) => t.manifest_digest))];
    for (const id of await this.store.images.imageIdsOfManifests(containerId, digests)) ids.add(id);
    return ids;
  }
}
