import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort, waitForPort } from './net.js';

/**
 * Debian's docker-registry (Distribution 2.8) on loopback with a temporary config and storage
 * folder; with `htpasswd` (lines of user:bcrypt-hash) it asks for Basic authentication.
 */
export async function startDockerRegistry(workDir: string, opts: { htpasswd?: string } = {}): Promise<{ host: string; pid: number; stop: () => Promise<void> }> {
  await mkdir(workDir, { recursive: true });
  const port = await freePort();
  const config = path.join(workDir, 'registry.yml');
  let auth = '';
  if (opts.htpasswd) {
    const file = path.join(workDir, 'htpasswd');
    await writeFile(file, `${opts.htpasswd}\n`);
    auth = `auth:\n  htpasswd: {realm: test-registry, path: ${file}}\n`;
  }
  await writeFile(
    config,
    `version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: ${path.join(workDir, 'storage')}}\n  delete: {enabled: true}\nhttp: {addr: "127.0.0.1:${port}"}\n${auth}`,
  );
  const child = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(port);
  return {
    host: `127.0.0.1:${port}`,
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill();
        await exited;
      }
    },
  };
}
