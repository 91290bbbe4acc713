import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run, type RunResult } from './run.js';
import { ROOT } from './shelf.js';

export const SHELF_CLI = path.join(ROOT, 'dist/cli/main.js');

/** The built `shelf` CLI with its own config, cache and home folders (nothing of the real user's is read). */
export interface CliEnv extends Record<string, string> {
  HOME: string;
  XDG_CONFIG_HOME: string;
  XDG_CACHE_HOME: string;
  APPTAINER_CONFIGDIR: string;
  DOCKER_CONFIG: string;
}

export interface ShelfCli {
  home: string;
  env: CliEnv;
  run(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  spawn(args: string[]): ChildProcess;
}

export async function shelfCli(): Promise<ShelfCli> {
  const home = await mkdtemp(path.join(tmpdir(), 'shelf-cli-'));
  const env: CliEnv = {
    HOME: home,
    USERPROFILE: home,
    XDG_CONFIG_HOME: path.join(home, 'config'),
    XDG_CACHE_HOME: path.join(home, 'cache'),
    APPTAINER_CONFIGDIR: path.join(home, '.apptainer'),
    DOCKER_CONFIG: path.join(home, '.docker'),
    SHELF_TOKEN: '',
  };
  return {
    home,
    env,
    run: (args, opts = {}) => run(process.execPath, [SHELF_CLI, ...args], { env, ...opts }),
    spawn: (args) => spawn(process.execPath, [SHELF_CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }),
  };
}
