import { arch as nodeArch, tmpdir } from 'node:os';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import type { Registry } from '../registry/registry.js';
import { PgBossQueue } from './pgboss-queue.js';
import { TableQueue } from './queue.js';
import { Builds } from './service.js';
import { BuildWorker } from './worker.js';

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };

/** This machine's architecture in Go's names (what SIF and the clients use). */
export const hostArch = (): string => GOARCH[nodeArch()] ?? nodeArch();

export const buildWorkDir = (config: Config): string => config.build.workDir ?? path.join(tmpdir(), 'shelf-builds');

/** Host names (with port) under which this Shelf is reached: `library://HOST/…` and `From: HOST/…` mean it. */
export function ownHosts(config: Config, url: string): string[] {
  const hosts = new Set<string>([new URL(url).host.toLowerCase()]);
  if (config.publicUrl) hosts.add(new URL(config.publicUrl).host.toLowerCase());
  return [...hosts];
}

/**
 * The builder's service over its queue: pg-boss on PostgreSQL (every node and builder shares the
 * database), the `builds` table on SQLite (the embedded default: one process). pg-boss starts
 * lazily, at the first build; `Builds.close` stops it.
 */
export function openBuilds(config: Config, registry: Registry, url: string, onError: (err: unknown) => void = (err) => console.error('build queue:', err)): Builds {
  const builds = new Builds(registry, {
    arches: config.build.arches ?? [hostArch()],
    ephemeralTtl: config.build.ephemeralTtl,
    contextTtl: config.build.contextTtl,
    maxContextBytes: config.build.maxContextSize,
    maxDefinitionBytes: 1 << 20,
    ownHosts: ownHosts(config, url),
  });
  const meta = registry.meta;
  builds.queue =
    meta.dialect === 'postgres' && config.db
      ? new PgBossQueue(meta.db, { url: config.db, schema: config.build.queueSchema, staleSeconds: config.build.staleAfter, timeoutSeconds: config.build.timeout, onError }, builds)
      : new TableQueue(meta.db, builds, config.build.staleAfter);
  return builds;
}

/** A builder over the shared queue, as the config describes it. */
export function makeWorker(config: Config, builds: Builds, url: string, opts: { arch?: string; concurrency?: number; onError?: (err: unknown) => void } = {}): BuildWorker {
  const b = config.build;
  return new BuildWorker({
    builds,
    arch: opts.arch ?? hostArch(),
    concurrency: opts.concurrency ?? b.concurrency,
    workRoot: buildWorkDir(config),
    idBase: b.idRangeStart,
    timeoutSeconds: b.timeout,
    network: b.network,
    limits: b.memory || b.cpus || b.pids ? { memory: b.memory, cpus: b.cpus, pids: b.pids } : undefined,
    shelfUrl: (config.publicUrl ?? url).replace(/\/+$/, ''),
    ownHosts: ownHosts(config, url),
    maxBytes: b.maxDownload,
    onError: opts.onError,
  });
}
