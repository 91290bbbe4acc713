import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CONTROLLERS = ['memory', 'cpu', 'pids'] as const;
type Controller = (typeof CONTROLLERS)[number];

export interface SandboxLimits {
  /** Memory in bytes (no swap beyond it). */
  memory?: number;
  /** CPU time in CPUs (e.g. 1.5). */
  cpus?: number;
  /** Processes and threads. */
  pids?: number;
}

/**
 * A build's cgroup: one folder on a cgroup v2 machine, one per controller on cgroup v1 (memory,
 * cpu, pids), each under a `shelf-builds` folder beside this process's own cgroup.
 */
export interface BuildCgroup {
  dirs: string[];
  version: 1 | 2;
}

type Parents = { version: 2; dir: string } | { version: 1; dirs: Partial<Record<Controller, string>> } | null;
let parents: Parents | undefined;

/** Where build cgroups go: a delegated v2 subtree, the v1 controllers' own folders, or nowhere. */
async function cgroupParents(): Promise<Parents> {
  if (parents !== undefined) return parents;
  parents = null;
  if (existsSync(path.join(CGROUP_ROOT, 'cgroup.controllers'))) {
    const dir = path.join(CGROUP_ROOT, 'shelf-builds');
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(CGROUP_ROOT, 'cgroup.subtree_control'), '+memory +cpu +pids').catch(() => undefined);
      await writeFile(path.join(dir, 'cgroup.subtree_control'), '+memory +cpu +pids');
      parents = { version: 2, dir };
    } catch {
      parents = null;
    }
    return parents;
  }
  // cgroup v1: this process's place in each controller's hierarchy (`N:memory:/path`).
  const own = await readFile('/proc/self/cgroup', 'utf8').catch(() => '');
  const dirs: Partial<Record<Controller, string>> = {};
  for (const line of own.split('\n')) {
    const [, names, where] = line.split(':');
    for (const controller of CONTROLLERS) {
      if (!names?.split(',').includes(controller) || where === undefined) continue;
      const mount = [controller, names].map((m) => path.join(CGROUP_ROOT, m)).find((m) => existsSync(path.join(m, 'cgroup.procs')));
      if (!mount) continue;
      const dir = path.join(mount, where, 'shelf-builds');
      try {
        await mkdir(dir, { recursive: true });
        dirs[controller] = dir;
      } catch {
        // not ours to write: this controller stays without limits
      }
    }
  }
  parents = dirs.memory || dirs.pids || dirs.cpu ? { version: 1, dirs } : null;
  return parents;
}

/** A cgroup with the limits, or null where the machine offers none to this process. */
export async function makeCgroup(name: string, limits: SandboxLimits): Promise<BuildCgroup | null> {
  const where = await cgroupParents();
  if (!where) return null;
  const made: string[] = [];
  try {
    if (where.version === 2) {
      const dir = path.join(where.dir, name);
      await mkdir(dir);
      made.push(dir);
      if (limits.memory) await writeFile(path.join(dir, 'memory.max'), String(limits.memory));
      if (limits.memory) await writeFile(path.join(dir, 'memory.swap.max'), '0').catch(() => undefined);
      if (limits.pids) await writeFile(path.join(dir, 'pids.max'), String(limits.pids));
      if (limits.cpus) await writeFile(path.join(dir, 'cpu.max'), `${Math.round(limits.cpus * 100_000)} 100000`);
      return { dirs: made, version: 2 };
    }
    const wanted: Array<[Controller, boolean]> = [['memory', !!limits.memory], ['pids', !!limits.pids], ['cpu', !!limits.cpus]];
    for (const [controller, needed] of wanted) {
      const parent = where.dirs[controller];
      if (!needed || !parent) continue;
      const dir = path.join(parent, name);
      await mkdir(dir);
      made.push(dir);
      if (controller === 'memory') {
        await writeFile(path.join(dir, 'memory.limit_in_bytes'), String(limits.memory));
        // With swap accounting, memory and swap together: no escape into swap.
        await writeFile(path.join(dir, 'memory.memsw.limit_in_bytes'), String(limits.memory)).catch(() => undefined);
      }
      if (controller === 'pids') await writeFile(path.join(dir, 'pids.max'), String(limits.pids));
      if (controller === 'cpu') {
        await writeFile(path.join(dir, 'cpu.cfs_period_us'), '100000');
        await writeFile(path.join(dir, 'cpu.cfs_quota_us'), String(Math.round(limits.cpus! * 100_000)));
      }
    }
    return made.length ? { dirs: made, version: 1 } : null;
  } catch {
    for (const dir of made.reverse()) await rmdir(dir).catch(() => undefined);
    return null;
  }
}

/** Every process left in the cgroup is killed, then its folders go. */
export async function removeCgroup(cgroup: BuildCgroup): Promise<void> {
  for (const dir of cgroup.dirs) {
    if (cgroup.version === 2) await writeFile(path.join(dir, 'cgroup.kill'), '1').catch(() => undefined);
    else {
      const pids = (await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    for (let i = 0; i < 50; i++) {
      try {
        await rmdir(dir);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
}

/** Whether memory/CPU/pids limits can be applied on this machine (cgroup v2, or v1 controllers this process may write). */
export async function cgroupLimitsAvailable(): Promise<boolean> {
  return (await cgroupParents()) !== null;
}

/** The shell prefix that puts itself (and so everything it execs) into the cgroup first. */
export function joinCgroupArgv(cgroup: BuildCgroup, argv: string[]): string[] {
  return ['/bin/sh', '-c', 'for d in "$@"; do [ "$d" = -- ] && break; echo $$ > "$d/cgroup.procs" || exit 1; shift; done; shift; exec "$@"', 'shelf-cgroup', ...cgroup.dirs, '--', ...argv];
}
