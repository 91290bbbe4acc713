import type { Kysely } from 'kysely';
import { ClientError } from '../client/errors.js';
import type { Database } from '../meta/schema.js';
import { runMirror } from '../mirror/engine.js';
import { openMirror, type MirrorRequest } from '../mirror/open.js';
import { RegistryError } from '../registry/errors.js';

/** One configured upstream: local paths under `namespace` are fetched from `url` when missing. */
export interface Upstream {
  /** A local entity (`hub/`) or entity/collection (`hub/library/`). */
  namespace: string;
  /** `library://HOST[/PREFIX]`, `oras://HOST[/PREFIX]` (or `docker://`, SIF images only). */
  url: string;
  /** Seconds a fetched tag is served before the upstream is asked again. */
  ttl: number;
  /** Seconds the upstream may send nothing before the fetch fails (default 30). */
  timeout?: number | undefined;
  username?: string | undefined;
  password?: string | undefined;
  keyserver?: string | undefined;
}

export interface CacheSettings {
  upstreams: Upstream[];
  /** Bytes of cached images kept; 0 = no limit. Least recently used containers go first. */
  quota: number;
  /** Fetches from upstreams at the same time (across all names). */
  maxFetches?: number;
}

export interface ContainerName {
  entity: string;
  collection: string;
  container: string;
}

interface CacheEntriesTable {
  path: string;
  upstream: string;
  fetched_at: string;
  last_access: string;
  size: number;
}
interface CacheTagsTable {
  key: string;
  path: string;
  fetched_at: string;
}
type CacheDb = Kysely<Database & { cache_entries: CacheEntriesTable; cache_tags: CacheTagsTable }>;

/** The name the cache writes as; its content is kept apart from pushed content by this owner. */
export const CACHE_USER = 'shelf-cache';

/** What a request for a local name means upstream: the upstream and the source text for one tag. */
export function upstreamFor(upstreams: Upstream[], name: ContainerName, tag: string): { upstream: Upstream; source: string } | null {
  const parts = [name.entity, name.collection, name.container];
  for (const upstream of upstreams) {
    const prefix = upstream.namespace.replace(/\/+$/, '').split('/');
    if (!prefix.every((p, i) => parts[i] === p)) continue;
    const rest = parts.slice(prefix.length);
    const base = upstream.url.replace(/\/+$/, '');
    return { upstream, source: `${base}/${rest.join('/')}:${tag}` };
  }
  return null;
}

/**
 * The pull-through cache: a pull of a tag in a cached namespace that this server does not hold
 * (or held longer than the TTL) copies that tag from its upstream first, with the mirror
 * engine, into this server through its own Library API — verified against its digest before
 * anything is visible. Concurrent requests for one tag share one fetch.
 */
export class PullThroughCache {
  private readonly inflight = new Map<string, Promise<void>>();
  private fetching = 0;
  private readonly waiting: Array<() => void> = [];
  /** Set once the server listens: where the cache writes to, and as whom. */
  self: { url: string; token: string } | null = null;

  constructor(
    private readonly settings: CacheSettings,
    private readonly db: Kysely<Database>,
    private readonly workDir: string,
    private readonly log: (msg: string, err?: unknown) => void = () => undefined,
  ) {}

  private get cache(): CacheDb {
    return this.db as CacheDb;
  }

  get enabled(): boolean {
    return this.settings.upstreams.length > 0;
  }

  /** The origin of a cached container, null for pushed content. */
  async originOf(name: ContainerName): Promise<{ upstream: string; fetchedAt: string } | null> {
    if (!this.enabled) return null;
    const row = await this.cache.selectFrom('cache_entries').selectAll().where('path', '=', pathOf(name)).executeTakeFirst();
    return row ? { upstream: row.upstream, fetchedAt: row.fetched_at } : null;
  }

  async entries(): Promise<Array<{ path: string; upstream: string; fetchedAt: string; lastAccess: string; size: number }>> {
    const rows = await this.cache.selectFrom('cache_entries').selectAll().orderBy('last_access', 'desc').execute();
    return rows.map((r) => ({ path: r.path, upstream: r.upstream, fetchedAt: r.fetched_at, lastAccess: r.last_access, size: Number(r.size) }));
  }

  /** Whether a write into this name must be refused: cached namespaces hold only what the cache fetched. */
  isCachedNamespace(name: Partial<ContainerName>): boolean {
    const parts = [name.entity, name.collection, name.container];
    return this.settings.upstreams.some((u) => {
      const prefix = u.namespace.replace(/\/+$/, '').split('/');
      return prefix.every((p, i) => parts[i] === undefined || parts[i] === p) && parts[0] === prefix[0];
    });
  }

  /**
   * Makes sure `name:tag` is here and fresh when it belongs to a cached namespace. Answers
   * quietly when it is not cached content, when the upstream has no such tag (the request then
   * finds nothing, as for any missing name), and when the upstream fails but an earlier copy
   * exists (stale is served). Fails `unavailable` when the upstream fails and nothing is here.
   */
  async ensure(name: ContainerName, tag: string | null, caller: string | null): Promise<void> {
    if (!this.enabled || !tag || caller === CACHE_USER || !this.self) return;
    const found = upstreamFor(this.settings.upstreams, name, tag);
    if (!found) return;
    const key = `${pathOf(name)}:${tag}`;
    const tagRow = await this.cache.selectFrom('cache_tags').selectAll().where('key', '=', key).executeTakeFirst();
    if (tagRow && Date.now() - Date.parse(tagRow.fetched_at) < found.upstream.ttl * 1000) {
      await this.touch(name);
      return;
    }
    let flight = this.inflight.get(key);
    if (!flight) {
      flight = this.fetch(name, tag, key, found, !!tagRow).finally(() => this.inflight.delete(key));
      this.inflight.set(key, flight);
    }
    await flight;
  }

  private async fetch(name: ContainerName, tag: string, key: string, found: { upstream: Upstream; source: string }, haveCopy: boolean): Promise<void> {
    await this.slot();
    const { upstream, source } = found;
    const watch = new IdleWatch(upstream.timeout ?? DEFAULT_UPSTREAM_TIMEOUT);
    // The slot is held until the copy ends, even when the caller was answered at a stall: a
    // stalled upstream never has more than `maxFetches` copies running against it.
    const copying = this.copy(name, found, watch).finally(() => this.release());
    let failure: ClientError | null;
    let copied = 0;
    try {
      ({ failure, copied } = await Promise.race([copying, watch.stalled]));
    } catch (err) {
      failure = err instanceof ClientError ? err : new ClientError('server', (err as Error).message);
    } finally {
      watch.stop();
    }
    if (failure) {
      if (failure.kind === 'not-found' && !haveCopy) return;
      if (haveCopy) {
        this.log(`pull-through cache: ${source} failed, serving the copy fetched before: ${failure.message}`);
        return;
      }
      throw new RegistryError('unavailable', `upstream ${upstream.url} for ${pathOf(name)}:${tag}: ${failure.message}`);
    }
    const now = new Date().toISOString();
    await this.upsertTag(key, pathOf(name), now);
    await this.upsertEntry(pathOf(name), upstream.url, now, copied);
    await this.evict();
  }

  /** One tag copied from the upstream by the mirror engine; every event it reports is progress. */
  private async copy(name: ContainerName, { upstream, source }: { upstream: Upstream; source: string }, watch: IdleWatch): Promise<{ failure: ClientError | null; copied: number }> {
    const self = this.self!;
    const request: MirrorRequest = {
      source,
      destination: `library://${new URL(self.url).host}/${pathOf(name)}`,
      destUrl: self.url,
      sourceToken: source.startsWith('library:') ? (upstream.password ?? null) : null,
      sourceCredentials: !source.startsWith('library:') && upstream.username ? { username: upstream.username, password: upstream.password ?? '' } : null,
      sourceKeyserver: upstream.keyserver ?? null,
      destToken: self.token,
    };
    try {
      const opts = await openMirror(request, { jobs: 2, concurrency: 4, chunkSize: 8 * 2 ** 20, dryRun: false, workDir: this.workDir, signal: watch.signal, onEvent: () => watch.poke() });
      const summary = await runMirror(opts);
      const failed = summary.outcomes.find((o) => o.action === 'failed');
      const copied = summary.outcomes.filter((o) => o.action === 'copied').reduce((sum, o) => sum + o.size, 0);
      if (failed) return { failure: new ClientError(summary.failureKind ?? 'server', failed.error ?? 'failed'), copied };
      if (summary.outcomes.length === 0) return { failure: new ClientError('not-found', `${source}: no such tag upstream`), copied };
      return { failure: null, copied };
    } catch (err) {
      return { failure: err instanceof ClientError ? err : new ClientError('server', (err as Error).message), copied: 0 };
    }
  }

  private async upsertTag(key: string, path: string, now: string): Promise<void> {
    const updated = await this.cache.updateTable('cache_tags').set({ fetched_at: now }).where('key', '=', key).executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) {
      await this.cache.insertInto('cache_tags').values({ key, path, fetched_at: now }).execute().catch(() => this.cache.updateTable('cache_tags').set({ fetched_at: now }).where('key', '=', key).execute());
    }
  }

  private async upsertEntry(path: string, upstream: string, now: string, added: number): Promise<void> {
    const row = await this.cache.selectFrom('cache_entries').select('size').where('path', '=', path).executeTakeFirst();
    if (row) {
      await this.cache.updateTable('cache_entries').set({ fetched_at: now, last_access: now, size: Number(row.size) + added }).where('path', '=', path).execute();
    } else {
      await this.cache.insertInto('cache_entries').values({ path, upstream, fetched_at: now, last_access: now, size: added }).execute();
    }
  }

  private async touch(name: ContainerName): Promise<void> {
    await this.cache.updateTable('cache_entries').set({ last_access: new Date().toISOString() }).where('path', '=', pathOf(name)).execute();
  }

  /** Over the quota: whole containers go, least recently used first (their bytes go with the next GC). */
  private async evict(): Promise<void> {
    if (!this.settings.quota) return;
    const rows = await this.cache.selectFrom('cache_entries').selectAll().orderBy('last_access', 'asc').execute();
    let total = rows.reduce((sum, r) => sum + Number(r.size), 0);
    for (const row of rows) {
      if (total <= this.settings.quota || rows.length <= 1) break;
      if ([...this.inflight.keys()].some((k) => k.startsWith(`${row.path}:`))) continue;
      try {
        await this.dropContainer(row.path);
        total -= Number(row.size);
        await this.cache.deleteFrom('cache_entries').where('path', '=', row.path).execute();
        await this.cache.deleteFrom('cache_tags').where('path', '=', row.path).execute();
      } catch (err) {
        this.log(`pull-through cache: evicting ${row.path} failed`, err);
      }
    }
  }

  /** Deletes every tagged image of a cached container through the Library API. */
  private async dropContainer(path: string): Promise<void> {
    const self = this.self!;
    const headers = { authorization: `Bearer ${self.token}` };
    const res = await fetch(`${self.url}/v1/containers/${path}`, { headers });
    if (res.status === 404) return;
    const k = ((await res.json()) as { data?: { archTags?: Record<string, Record<string, string>> } }).data;
    for (const [arch, tags] of Object.entries(k?.archTags ?? {})) {
      for (const tag of Object.keys(tags)) {
        const del = await fetch(`${self.url}/v1/images/${path}:${tag}?arch=${encodeURIComponent(arch)}`, { method: 'DELETE', headers });
        await del.body?.cancel();
      }
    }
  }

  private async slot(): Promise<void> {
    const max = this.settings.maxFetches ?? 4;
    if (this.fetching < max) {
      this.fetching++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.fetching--;
  }
}

const pathOf = (n: ContainerName) => `${n.entity}/${n.collection}/${n.container}`;

/** Seconds an upstream may send nothing before a fetch is given up (`cache.upstreams[].timeout`). */
export const DEFAULT_UPSTREAM_TIMEOUT = 30;

/**
 * Gives up a fetch whose upstream has sent nothing for `seconds`: `stalled` rejects and `signal`
 * aborts (the mirror engine stops before its next image). A slow but steady upstream is never cut.
 */
class IdleWatch {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private fail: (err: ClientError) => void = () => undefined;
  readonly stalled: Promise<never>;

  constructor(private readonly seconds: number) {
    this.stalled = new Promise<never>((_, reject) => (this.fail = reject));
    this.stalled.catch(() => undefined);
    this.poke();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  poke(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.controller.abort();
      this.fail(new ClientError('network', `the upstream sent nothing for ${this.seconds} s`));
    }, this.seconds * 1000);
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
