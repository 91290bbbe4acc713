import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';

/** Where interrupted pushes remember how far they got: `$XDG_CACHE_HOME/shelf/transfers/`. */
export function transfersDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_CACHE_HOME) return path.join(env.XDG_CACHE_HOME, 'shelf', 'transfers');
  if (process.platform === 'win32' && env.LOCALAPPDATA) return path.join(env.LOCALAPPDATA, 'shelf', 'transfers');
  return path.join(homedir(), '.cache', 'shelf', 'transfers');
}

/** A small JSON state file, replaced in one step so a kill never leaves half of one. */
export class StateFile<T> {
  constructor(readonly file: string) {}

  /** The state of one transfer, named by what identifies it (server, object, content digest). */
  static forTransfer<T>(identity: unknown, env: NodeJS.ProcessEnv = process.env): StateFile<T> {
    const key = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 32);
    return new StateFile<T>(path.join(transfersDir(env), `${key}.json`));
  }

  async read(): Promise<T | null> {
    try {
      return JSON.parse(await readFile(this.file, 'utf8')) as T;
    } catch {
      return null;
    }
  }

  async write(state: T): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(state), { mode: 0o600 });
    await rename(tmp, this.file);
  }

  async remove(): Promise<void> {
    await rm(this.file, { force: true });
  }
}

/** Serializes state writes from concurrent workers: the last one wins, none interleave. */
export class StateWriter<T> {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly state: StateFile<T>) {}
  save(value: T): Promise<void> {
    const snapshot = JSON.parse(JSON.stringify(value)) as T;
    this.chain = this.chain.then(() => this.state.write(snapshot));
    return this.chain;
  }
}
