import { chmod, lchown, lstat, mkdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes into a build's rootfs from the builder (host root or the builder's user), giving every
 * created path the owner the sandbox sees as root, and never following a symlink the image
 * planted: each path is resolved component by component inside the rootfs.
 */
export class Rootfs {
  constructor(
    readonly dir: string,
    /** The host id that is root inside the build's user namespace. */
    private readonly rootId: number,
  ) {}

  /**
   * The host path of `rel` inside the rootfs, with symlinks of the image resolved as the
   * container would see them (absolute targets relative to the rootfs), never leaving it.
   */
  async resolve(rel: string, followLast = true): Promise<string> {
    const parts = rel.split('/').filter((p) => p && p !== '.');
    let current: string[] = [];
    let hops = 0;
    while (parts.length) {
      const part = parts.shift()!;
      if (part === '..') {
        current.pop();
        continue;
      }
      const candidate = path.join(this.dir, ...current, part);
      const st = await lstat(candidate).catch(() => null);
      if (st?.isSymbolicLink() && (followLast || parts.length > 0)) {
        if (++hops > 40) throw new Error(`${rel}: too many levels of symbolic links`);
        const target = await readlink(candidate);
        if (target.startsWith('/')) current = [];
        parts.unshift(...target.split('/').filter((p) => p && p !== '.'));
        continue;
      }
      current.push(part);
    }
    return path.join(this.dir, ...current);
  }

  async exists(rel: string): Promise<boolean> {
    return (await lstat(await this.resolve(rel, false)).catch(() => null)) !== null;
  }

  async mkdirs(rel: string, mode = 0o755): Promise<string> {
    const parts = rel.split('/').filter(Boolean);
    let sofar = '';
    for (const [i, p] of parts.entries()) {
      sofar = `${sofar}/${p}`;
      const host = await this.resolve(sofar);
      const st = await lstat(host).catch(() => null);
      if (!st) {
        await mkdir(host);
        // Explicitly: mkdir's mode passes through the umask and drops the sticky bit.
        await chmod(host, i === parts.length - 1 ? mode : 0o755);
        await lchown(host, this.rootId, this.rootId);
      }
    }
    return this.resolve(rel);
  }

  async write(rel: string, content: string | Buffer, mode = 0o644, overwrite = true): Promise<void> {
    await this.mkdirs(path.posix.dirname(rel));
    const host = await this.resolve(rel);
    if (!overwrite && (await lstat(host).catch(() => null))) return;
    await writeFile(host, content, { mode });
    await lchown(host, this.rootId, this.rootId);
  }

  async append(rel: string, content: string, mode = 0o644): Promise<void> {
    const host = await this.resolve(rel);
    const before = await readFile(host, 'utf8').catch(() => null);
    await this.write(rel, (before ?? '') + content, mode);
  }

  async read(rel: string): Promise<string | null> {
    return readFile(await this.resolve(rel), 'utf8').catch(() => null);
  }

  /** Removes a path (a symlink itself, not its target). */
  async remove(rel: string): Promise<void> {
    await rm(await this.resolve(rel, false), { recursive: true, force: true });
  }

  /** A symlink, unless something exists there already. */
  async link(rel: string, target: string): Promise<void> {
    await this.mkdirs(path.posix.dirname(rel));
    const host = await this.resolve(rel, false);
    if (await lstat(host).catch(() => null)) return;
    await symlink(target, host);
    await lchown(host, this.rootId, this.rootId);
  }

  /** The chown the builder gives a folder it made for the sandbox. */
  async own(hostPath: string): Promise<void> {
    await lchown(hostPath, this.rootId, this.rootId);
  }
}
