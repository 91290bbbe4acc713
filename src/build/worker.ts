import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Principal } from '../registry/accounts/accounts.js';
import { RegistryError } from '../registry/errors.js';
import { parseLibraryRef } from '../registry/namespaces/names.js';
import type { Registry } from '../registry/registry.js';
import { baseFetcher } from './bases.js';
import { BuildFailure, runBuild } from './builder.js';
import { ID_RANGE, type SandboxLimits } from './sandbox.js';
import type { QueueWorker } from './queue.js';
import type { BuildRow, Builds } from './service.js';

export interface WorkerOptions {
  builds: Builds;
  arch: string;
  concurrency: number;
  /** A name unique to this worker process. */
  node?: string;
  workRoot: string;
  /** First host id of the builder's range; slot N uses idBase + N × 65536. */
  idBase: number;
  timeoutSeconds: number;
  network: boolean;
  limits?: SandboxLimits;
  shelfUrl: string;
  ownHosts: string[];
  maxBytes: number;
  pollMs?: number;
  heartbeatMs?: number;
  onError?: (err: unknown) => void;
}

interface Running {
  row: BuildRow;
  abort: AbortController;
  done: Promise<void>;
}

/** Pushes a built image the way any Library push goes: namespaces, quota, permissions, tag. */
export async function pushBuilt(registry: Registry, principal: Principal, refText: string, file: string, digest: string, size: number, arch: string): Promise<void> {
  const ref = parseLibraryRef(refText);
  const container = await registry.namespaces.ensureContainer(principal, ref);
  const created = await registry.images.create(principal, container.id, digest, 'built by the Shelf remote builder');
  if (created.image.uploaded !== 1) await registry.uploads.receiveLegacy(principal, created.image.id, createReadStream(file), size);
  await registry.images.setTag(principal, container.id, arch, ref.tag!, created.image.id);
}

/**
 * A builder: takes builds of one architecture from the build queue (`Builds.queue`: pg-boss on
 * PostgreSQL, the `builds` table on SQLite), claims each in the shared `builds` table (a build
 * cancelled while it waited is skipped), runs up to `concurrency` at once, streams their logs into
 * the database, pushes the results, and stops builds whose cancel was asked for on any node. The
 * queue finds builders that died (pg-boss's job heartbeat, or the table's stale sweep).
 */
export class BuildWorker {
  readonly node: string;
  private readonly running = new Map<string, Running>();
  private readonly slots: boolean[];
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private taking: Promise<QueueWorker | null> | null = null;

  constructor(private readonly opts: WorkerOptions) {
    this.node = opts.node ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
    this.slots = new Array<boolean>(opts.concurrency).fill(false);
  }

  private onError(err: unknown): void {
    (this.opts.onError ?? console.error)(err);
  }

  start(): void {
    const { builds, arch, concurrency } = this.opts;
    this.taking = builds.queue.work({ arch, concurrency, pollMs: this.opts.pollMs ?? 1000, onError: (err) => this.onError(err) }, (id, signal) => this.take(id, signal)).catch((err: unknown) => {
      this.onError(err);
      return null;
    });
    this.timers.push(setInterval(() => void this.beat().catch((err: unknown) => this.onError(err)), this.opts.heartbeatMs ?? 3000));
    this.timers.push(setInterval(() => void builds.expire().catch((err: unknown) => this.onError(err)), 60_000));
  }

  /** Stops taking builds; running ones are cancelled and reported failed. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await (await this.taking)?.stop();
    for (const r of this.running.values()) r.abort.abort(new BuildFailure('the builder was stopped'));
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  /** Builds being run now. */
  get active(): number {
    return this.running.size;
  }

  /** One build from the queue: claimed and run in a free slot, or skipped when it is not queued any more. */
  private async take(id: string, queueSignal: AbortSignal): Promise<void> {
    // Handed over while stopping: refused unclaimed, so the queue gives it to another builder.
    if (this.stopped) throw new Error(`builder ${this.node} is stopping`);
    const slot = this.slots.indexOf(false);
    if (slot < 0) throw new Error(`builder ${this.node}: the queue handed out more than ${this.opts.concurrency} builds at once`);
    // Reserved before the claim: two builds handed over at once must not share an id range.
    this.slots[slot] = true;
    let row: BuildRow | null = null;
    try {
      row = await this.opts.builds.start(id, this.node);
    } finally {
      if (!row) this.slots[slot] = false;
    }
    if (!row) return;
    const abort = new AbortController();
    // The queue took the job away (its heartbeat was not seen in time): the build is failed elsewhere.
    const onLost = () => abort.abort(new BuildFailure('builder lost: the build queue gave this build up'));
    queueSignal.addEventListener('abort', onLost, { once: true });
    const done = this.run(row, slot, abort.signal).finally(() => {
      queueSignal.removeEventListener('abort', onLost);
      this.slots[slot] = false;
      this.running.delete(row.id);
    });
    this.running.set(row.id, { row, abort, done });
    await done;
  }

  private async beat(): Promise<void> {
    const ids = [...this.running.keys()];
    const stop = await this.opts.builds.heartbeat(this.node, ids);
    for (const id of stop) this.running.get(id)?.abort.abort(new BuildFailure('build cancelled'));
  }

  private async run(row: BuildRow, slot: number, signal: AbortSignal): Promise<void> {
    const { builds } = this.opts;
    const registry = builds.registry;
    // The log goes to the database in small batches, in order.
    let pending = '';
    let chain: Promise<void> = Promise.resolve();
    const flush = () => {
      const data = pending;
      pending = '';
      if (data) chain = chain.then(() => builds.appendLog(row.id, data)).catch((err: unknown) => this.onError(err));
      return chain;
    };
    const flusher = setInterval(() => void flush(), 250);
    const log = (text: string) => {
      pending += text;
      if (pending.length > 32 * 1024) void flush();
    };
    const contextFile = path.join(this.opts.workRoot, `${row.id}.context.tar.gz`);
    let cleanup: (() => Promise<void>) | null = null;
    try {
      const owner = await registry.accounts.principalOf(row.owner_id);
      log(`INFO:    Build ${row.id} on ${this.node.split(':')[0]} (${row.arch})\n`);
      if (row.context_digest) {
        await mkdir(this.opts.workRoot, { recursive: true, mode: 0o711 });
        await pipeline(await registry.blobs.open(row.context_digest), createWriteStream(contextFile, { mode: 0o600 }));
      }
      const result = await runBuild({
        id: row.id,
        definition: row.definition,
        arch: row.arch,
        context: row.context_digest ? contextFile : null,
        workingDir: row.working_dir,
        workRoot: this.opts.workRoot,
        idBase: this.opts.idBase + slot * ID_RANGE,
        network: this.opts.network,
        timeoutSeconds: this.opts.timeoutSeconds,
        limits: this.opts.limits,
        maxBytes: this.opts.maxBytes,
        fetchBase: baseFetcher({ registry, shelfUrl: this.opts.shelfUrl, ownHosts: this.opts.ownHosts, maxBytes: this.opts.maxBytes }, owner),
        log,
        signal,
      });
      cleanup = result.cleanup;
      if (signal.aborted) throw signal.reason;
      log(`INFO:    Uploading the image to library://${row.library_ref}\n`);
      await pushBuilt(registry, owner, row.library_ref, result.file, result.digest, result.size, result.arch);
      log(`INFO:    Build complete: library://${row.library_ref}${row.expires_at ? ` (kept until ${row.expires_at})` : ''}\n`);
      await flush();
      await builds.finish(row.id, this.node, { state: 'succeeded', digest: result.digest, size: result.size });
    } catch (err) {
      const cancelled = signal.aborted && (signal.reason as Error)?.message === 'build cancelled';
      const message = err instanceof BuildFailure || err instanceof RegistryError ? err.message : `internal builder error: ${(err as Error).message}`;
      if (!(err instanceof BuildFailure) && !(err instanceof RegistryError)) this.onError(err);
      log(`FATAL:   ${cancelled ? 'build cancelled' : message}\n`);
      await flush();
      await builds.finish(row.id, this.node, { state: cancelled ? 'cancelled' : 'failed', error: cancelled ? 'cancelled' : message });
    } finally {
      clearInterval(flusher);
      await flush();
      await rm(contextFile, { force: true });
      await (cleanup ?? (() => rm(path.join(this.opts.workRoot, row.id), { recursive: true, force: true })))();
    }
  }
}
