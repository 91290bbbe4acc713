import type { TagPoliciesTable } from '../../meta/schema.js';
import type { MetaStore } from '../../meta/store.js';
import { access } from '../accounts/access.js';
import type { Principal } from '../accounts/accounts.js';
import { RegistryError, invalid } from '../errors.js';
import { chainOf, containerChain, type Container, type Namespaces } from './namespaces.js';
import { nowIso } from '../util.js';

export type ScopeKind = 'entity' | 'collection' | 'container';

/** What one scope sets. Unset fields (null) mean "no rule". */
export interface TagPolicy {
  /** Tag patterns (`*` any run of characters, `?` one) whose tags may not move; [] none. */
  immutableTags: string[];
  /** Keep the newest N images of each container (by push time); null: no limit. */
  keepNewest: number | null;
  /** Seconds after which an untagged image goes; null: never by age. */
  dropUntaggedAfter: number | null;
  /** Images with a verified signature are never removed by retention. */
  keepSigned: boolean;
}

export interface ScopedPolicy extends TagPolicy {
  scope: ScopeKind;
  /** `entity[/collection[/container]]`. */
  path: string;
  updatedAt: string;
  updatedBy: string;
}

export interface PolicyView {
  /** The scope asked about. */
  scope: ScopeKind;
  path: string;
  /** The policy set on this scope itself, or null. */
  own: ScopedPolicy | null;
  /** The policy in force here: the nearest scope's (container over collection over entity), or null. */
  effective: ScopedPolicy | null;
}

/** The input of `PUT /api/policies/…` and `shelf admin policy set`. */
export interface PolicyInput {
  immutableTags?: unknown;
  keepNewest?: unknown;
  dropUntaggedAfter?: unknown;
  keepSigned?: unknown;
}

type PolicyRow = TagPoliciesTable;

const MAX_PATTERNS = 50;
const PATTERN = /^[A-Za-z0-9_.*?-]{1,128}$/;

/** `*` alone stands for every tag but `latest`, which is meant to move; name `latest` to pin it too. */
export function tagMatches(patterns: string[], tag: string): boolean {
  return patterns.some((p) => {
    if (p === tag) return true;
    if (tag === 'latest') return false;
    const re = new RegExp(`^${p.replace(/[.+^${}()|[\]\\-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    return re.test(tag);
  });
}

/** Seconds from a number or `90s`, `30m`, `12h`, `30d`, `2w` (as the configuration's durations, plus weeks). */
export function parseDurationText(v: unknown): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  const m = typeof v === 'string' ? /^\s*(\d+)\s*(s|m|h|d|w)?\s*$/.exec(v) : null;
  if (!m) throw invalid(`not a duration: ${JSON.stringify(v)} (use seconds, or e.g. 90s, 30m, 12h, 30d, 2w)`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2] ?? 's']!;
}

function parseImmutable(v: unknown): string[] {
  if (v === undefined || v === null || v === false) return [];
  if (v === true) return ['*'];
  const list = typeof v === 'string' ? v.split(',') : Array.isArray(v) ? v : null;
  if (!list || list.some((p) => typeof p !== 'string')) throw invalid('immutableTags is true, false, or a list of tag patterns such as ["v*","stable"]');
  const patterns = [...new Set((list as string[]).map((p) => p.trim()).filter(Boolean))];
  if (patterns.length > MAX_PATTERNS) throw invalid(`at most ${MAX_PATTERNS} immutable tag patterns`);
  for (const p of patterns) if (!PATTERN.test(p)) throw invalid(`invalid tag pattern ${JSON.stringify(p)}: letters, digits, _ . - and the wildcards * ?`);
  return patterns;
}

/** A whole policy from its input (fields left out are unset). */
export function parsePolicy(input: PolicyInput): TagPolicy {
  let keepNewest: number | null = null;
  if (input.keepNewest !== undefined && input.keepNewest !== null) {
    const n = typeof input.keepNewest === 'string' ? Number(input.keepNewest) : input.keepNewest;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw invalid('keepNewest is a whole number of images, 1 or more');
    keepNewest = n;
  }
  const drop = input.dropUntaggedAfter;
  const dropUntaggedAfter = drop === undefined || drop === null ? null : parseDurationText(drop);
  if (input.keepSigned !== undefined && input.keepSigned !== null && typeof input.keepSigned !== 'boolean') throw invalid('keepSigned is true or false');
  return { immutableTags: parseImmutable(input.immutableTags), keepNewest, dropUntaggedAfter, keepSigned: input.keepSigned === true };
}

/** A refused tag move, in the domain's terms (each protocol gives it its own envelope). */
export const immutableTag = (tag: string, where: string, detail: string): RegistryError =>
  new RegistryError('conflict', `tag ${tag} of ${where} is immutable: ${detail} (an administrator may override)`, 'tag');

/**
 * Tag immutability and retention policies per entity, collection or container. The nearest
 * scope with a policy decides, as a whole: a container's policy replaces its collection's,
 * which replaces its entity's.
 */
export class Policies {
  constructor(
    private readonly store: MetaStore,
    private readonly namespaces: Namespaces,
  ) {}

  /** The scope a path names, checked readable by the caller. */
  private async scopeOf(principal: Principal | null, pathText: string) {
    const parts = pathText.replace(/^library:\/\//, '').replace(/^\/+|\/+$/g, '').split('/');
    if (parts.length < 1 || parts.length > 3 || parts.some((p) => !p)) throw invalid('a policy is set on ENTITY[/COLLECTION[/CONTAINER]]');
    const entity = await this.namespaces.getEntity(principal, parts[0]!);
    if (parts.length === 1) return { kind: 'entity' as const, id: entity.id, path: entity.name, chain: chainOf(entity) };
    const collection = await this.namespaces.getCollection(principal, parts[0]!, parts[1]!);
    if (parts.length === 2) return { kind: 'collection' as const, id: collection.id, path: `${entity.name}/${collection.name}`, chain: chainOf(entity, collection) };
    const container = await this.namespaces.getContainer(principal, { entity: parts[0]!, collection: parts[1]!, container: parts[2]! });
    return { kind: 'container' as const, id: container.id, path: `${entity.name}/${collection.name}/${container.name}`, chain: containerChain(container) };
  }

  async get(principal: Principal | null, pathText: string): Promise<PolicyView> {
    const scope = await this.scopeOf(principal, pathText);
    const own = await this.row(scope.id);
    const parts = scope.path.split('/');
    let effective = own ? toPolicy(own, scope.kind, scope.path) : null;
    if (!effective && scope.kind === 'container') {
      const container = await this.namespaces.getContainer(principal, { entity: parts[0]!, collection: parts[1]!, container: parts[2]! });
      effective = await this.effectiveFor(container);
    } else if (!effective && scope.kind === 'collection') {
      const entity = await this.namespaces.getEntity(principal, parts[0]!);
      const e = await this.row(entity.id);
      effective = e ? toPolicy(e, 'entity', entity.name) : null;
    }
    return { scope: scope.kind, path: scope.path, own: own ? toPolicy(own, scope.kind, scope.path) : null, effective };
  }

  /** Sets (replaces) the policy of a scope: its owners (a user, a group's owners) and administrators. */
  async set(principal: Principal | null, pathText: string, input: PolicyInput): Promise<PolicyView> {
    const scope = await this.scopeOf(principal, pathText);
    access.assertOwner(principal, scope.chain);
    const p = parsePolicy(input);
    const now = nowIso();
    const values = {
      immutable_tags: JSON.stringify(p.immutableTags),
      keep_newest: p.keepNewest,
      drop_untagged_after: p.dropUntaggedAfter,
      keep_signed: p.keepSigned ? 1 : 0,
      updated_at: now,
      updated_by: principal!.username,
    };
    await this.store.policies.put(scope.id, scope.kind, values);
    return this.get(principal, scope.path);
  }

  /** Removes the policy of a scope (the enclosing scope's then applies). */
  async clear(principal: Principal | null, pathText: string): Promise<PolicyView> {
    const scope = await this.scopeOf(principal, pathText);
    access.assertOwner(principal, scope.chain);
    await this.store.policies.remove(scope.id);
    return this.get(principal, scope.path);
  }

  private row(scopeId: string): Promise<PolicyRow | undefined> {
    return this.store.policies.of(scopeId);
  }

  /** The policy in force for a container, or null. */
  async effectiveFor(container: Container): Promise<ScopedPolicy | null> {
    const collection = container.collection;
    const entity = collection.entity;
    const rows = await this.store.policies.ofScopes([container.id, collection.id, entity.id]);
    const by = new Map(rows.map((r) => [r.scope_id, r]));
    const k = by.get(container.id);
    if (k) return toPolicy(k, 'container', `${entity.name}/${collection.name}/${container.name}`);
    const c = by.get(collection.id);
    if (c) return toPolicy(c, 'collection', `${entity.name}/${collection.name}`);
    const e = by.get(entity.id);
    return e ? toPolicy(e, 'entity', entity.name) : null;
  }

  /** Whether `tag` of the container may not move (nor go) for this caller. */
  async isImmutable(principal: Principal | null, container: Container, tag: string): Promise<boolean> {
    if (principal?.isAdmin) return false;
    const policy = await this.effectiveFor(container);
    return !!policy && tagMatches(policy.immutableTags, tag);
  }

  /** The tags of `tags` that are immutable in the container for this caller. */
  async immutableOf(principal: Principal | null, container: Container, tags: string[]): Promise<string[]> {
    if (principal?.isAdmin || tags.length === 0) return [];
    const policy = await this.effectiveFor(container);
    return policy ? tags.filter((t) => tagMatches(policy.immutableTags, t)) : [];
  }

  /** Every policy with a retention rule, with its scope. */
  async retentionScopes(): Promise<PolicyRow[]> {
    return this.store.policies.all();
  }
}

function toPolicy(r: PolicyRow, scope: ScopeKind, path: string): ScopedPolicy {
  return {
    scope,
    path,
    immutableTags: JSON.parse(r.immutable_tags) as string[],
    keepNewest: r.keep_newest === null ? null : Number(r.keep_newest),
    dropUntaggedAfter: r.drop_untagged_after === null ? null : Number(r.drop_untagged_after),
    keepSigned: r.keep_signed === 1,
    updatedAt: r.updated_at,
    updatedBy: r.updated_by,
  };
}

export const containerPath = (k: Container): string => `${k.collection.entity.name}/${k.collection.name}/${k.name}`;
