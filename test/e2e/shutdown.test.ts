import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, test } from 'node:test';
import { ADMIN_TOKEN, DB_KINDS, startShelf } from '../helpers/shelf.js';

const ADMIN = `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`;
const DEADLINE_SECONDS = 3;

for (const db of DB_KINDS) {
  describe(`graceful stop (${db})`, () => {
    test('SIGTERM under a stalled upload: new connections refused, exit 0 within the deadline', async () => {
      const shelf = await startShelf({ db, env: { SHELF_SHUTDOWN_TIMEOUT: String(DEADLINE_SECONDS) } });
      const socket = new net.Socket();
      try {
        const repo = 'admin/stop/repo';
        const start = await fetch(`${shelf.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } });
        assert.equal(start.status, 202);
        const location = start.headers.get('location')!;
        const { port } = new URL(shelf.url);
        // 64 KiB of a 64 MiB chunk, then nothing.
        await new Promise<void>((resolve, reject) => {
          socket.connect(Number(port), '127.0.0.1', () => {
            socket.write(`PATCH ${location} HTTP/1.1\r\nHost: shelf\r\nAuthorization: ${ADMIN}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${64 << 20}\r\n\r\n`);
            socket.write(randomBytes(65536), () => resolve());
          });
          socket.on('error', reject);
        });
        await new Promise((r) => setTimeout(r, 500));
        const exited = new Promise<number | null>((resolve) => shelf.process.once('exit', (code) => resolve(code)));
        const sent = Date.now();
        shelf.process.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 300));
        await assert.rejects(fetch(`${shelf.url}/version`), 'no new connections once stopping');
        const code = await exited;
        const took = Date.now() - sent;
        assert.equal(code, 0, shelf.output());
        assert.ok(took < DEADLINE_SECONDS * 1000 + 1000, `stopped after ${took} ms (deadline ${DEADLINE_SECONDS} s)`);
        assert.doesNotMatch(shelf.output(), /still not stopped/);
      } finally {
        socket.destroy();
        await shelf.stop();
      }
    });
  });
}
