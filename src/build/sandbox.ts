import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { joinCgroupArgv, makeCgroup, removeCgroup, type SandboxLimits } from './cgroups.js';
import { SANDBOX_SETUP, SANDBOX_WAIT } from './sandbox-setup.js';

/** The PATH every sandboxed command gets (Apptainer's default for builds). */
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const ID_RANGE = 65536;

export type { SandboxLimits } from './cgroups.js';

export interface SandboxOptions {
  /** image: run inside a rootfs; tools: run host tools with only the work folder visible. */
  mode: 'image' | 'tools';
  /** image: the rootfs; tools: an empty folder (the tmpfs root is mounted there). */
  root: string;
  /** tools: the build's work folder, seen at /work. */
  work?: string;
  command: string[];
  env?: Record<string, string>;
  /** First host id of the build's range: container id N is host id idBase + N. */
  idBase: number;
  /** Egress through slirp4netns (never to the host's loopback); off by default. */
  network?: boolean;
  readOnly?: boolean;
  timeoutMs: number;
  limits?: SandboxLimits;
  onOutput?: (chunk: Buffer) => void;
  signal?: AbortSignal;
  /** A folder the sandbox may use for its own files (the staged resolv.conf). */
  stateDir: string;
}

export interface SandboxResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  cancelled: boolean;
  /** The sandbox could not be set up (namespaces, mounts): a builder problem, not the build's. */
  setupFailed: boolean;
}

/** Debian's busybox-static: runs without the host's libraries once the root has changed. */
export function staticBusybox(): string {
  for (const p of ['/usr/bin/busybox', '/bin/busybox']) if (existsSync(p)) return p;
  throw new Error('the builder needs a static busybox (Debian package busybox-static)');
}

export { cgroupLimitsAvailable } from './cgroups.js';

async function waitForOwnUserNs(pid: number): Promise<void> {
  const mine = await readlink('/proc/self/ns/user');
  for (let i = 0; i < 1000; i++) {
    const theirs = await readlink(`/proc/${pid}/ns/user`).catch(() => null);
    if (theirs === null) throw new Error('the sandbox exited before it was set up');
    if (theirs !== mine) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('the sandbox did not create its user namespace');
}

/** Starts slirp4netns on the sandbox's network namespace; resolves once it is up. */
function startSlirp(pid: number): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const p = spawn('slirp4netns', ['--configure', '--mtu=65520', '--disable-host-loopback', '--ready-fd=3', String(pid), 'tap0'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const stop = () => {
      if (p.exitCode === null) p.kill('SIGKILL');
    };
    p.on('error', (e) => reject(new Error(`slirp4netns: ${e.message}`)));
    p.on('exit', (code) => reject(new Error(`slirp4netns exited (${code}): ${err.trim()}`)));
    (p.stdio[3] as NodeJS.ReadableStream).once('data', () => resolve(stop));
  });
}

/**
 * Runs a command in a sandbox: an unprivileged user namespace with the build's own 65536-id
 * range, new mount, pid, uts, ipc and network namespaces, the root replaced with pivot_root, a
 * minimal /dev, and (where the machine lets this process use cgroups, v2 or v1) memory/CPU/pids limits. No network unless
 * asked; then slirp4netns, which cannot reach the host's loopback. The wall-clock limit and a
 * cancel kill the whole process group; the pid namespace takes every descendant with it.
 */
export async function runSandboxed(opts: SandboxOptions): Promise<SandboxResult> {
  const resolv = opts.network ? path.join(opts.stateDir, 'resolv.conf') : '';
  if (resolv) await writeFile(resolv, 'nameserver 10.0.2.3\n', { mode: 0o644 });
  const cgroup = opts.limits ? await makeCgroup(`b-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`, opts.limits) : null;
  const map = `${opts.idBase},0,${ID_RANGE}`;
  // If the builder dies, its sandboxes die with it (the pid namespace takes every descendant).
  const unshare = ['setpriv', '--pdeathsig', 'SIGKILL', 'unshare', '--user', `--map-users=${map}`, `--map-groups=${map}`, '--setuid=0', '--setgid=0', '--mount', '--pid', '--fork', '--uts', '--ipc', '--net', '--kill-child=SIGKILL', '/bin/sh', '-c', SANDBOX_WAIT, 'shelf-sandbox', ...opts.command];
  // With a cgroup, a small shell joins it first so every process of the sandbox starts inside.
  const argv = cgroup ? joinCgroupArgv(cgroup, unshare) : unshare;
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      PATH: SANDBOX_PATH,
      ...opts.env,
      SB_MODE: opts.mode,
      SB_ROOT: opts.root,
      SB_WORK: opts.work ?? '',
      SB_READONLY: opts.readOnly ? '1' : '0',
      SB_RESOLV: resolv,
      SB_HOSTNAME: 'shelf-build',
      SB_SETUP: SANDBOX_SETUP,
      SB_UMOUNT: staticBusybox(),
    },
  });
  child.stdout!.on('data', (d: Buffer) => opts.onOutput?.(d));
  child.stderr!.on('data', (d: Buffer) => opts.onOutput?.(d));
  child.stdin!.on('error', () => undefined);
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
    child.on('error', () => resolve({ code: null, signal: null }));
  });
  let timedOut = false;
  let cancelled = false;
  const killAll = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killAll();
  }, opts.timeoutMs);
  const onAbort = () => {
    cancelled = true;
    killAll();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  let stopSlirp: (() => void) | null = null;
  let setupFailed = false;
  try {
    // The unshare process is the namespaces' first member: the network attaches to it.
    const pid = cgroup ? await childOf(child.pid!) : child.pid!;
    await waitForOwnUserNs(pid);
    if (opts.network) stopSlirp = await startSlirp(pid);
    child.stdin!.end('go\n');
  } catch (err) {
    setupFailed = !cancelled && !timedOut;
    if (setupFailed) opts.onOutput?.(Buffer.from(`FATAL:   sandbox setup failed: ${(err as Error).message}\n`));
    killAll();
  }
  const result = await closed;
  clearTimeout(timer);
  opts.signal?.removeEventListener('abort', onAbort);
  stopSlirp?.();
  if (cgroup) await removeCgroup(cgroup);
  // The setup script's own refusals (exit 111/112) are builder-side too.
  if (result.code === 111) setupFailed = true;
  return { ...result, timedOut, cancelled, setupFailed };
}

/** The shell that joined the cgroup execs unshare: same pid. */
async function childOf(pid: number): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    const exe = await readlink(`/proc/${pid}/exe`).catch(() => '');
    if (exe.endsWith('/unshare')) return pid;
    await new Promise((r) => setTimeout(r, 5));
  }
  return pid;
}
