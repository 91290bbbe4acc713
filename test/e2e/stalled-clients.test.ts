import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, DB_KINDS, startShelf, type TestShelf } from '../helpers/shelf.js';

const ADMIN = `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`;
const IDLE_SECONDS = 10;
const PER_ADDRESS = 120;
/** Stalled downloads, spread over addresses so the per-address cap does not refuse them. */
const DOWNLOADERS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
const PER_DOWNLOADER = 100;
const BLOB_BYTES = 8 << 20;
/**
 * Generous. Measured with 1000 stalled downloads of a 16 MiB blob: +1.2 GB with 1 MiB read chunks,
 * +190 MB with 32 KiB ones; with these 400 (and 100 stalled uploads) about +80 MB.
 */
const RSS_GROWTH_LIMIT_MIB = 150;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Open file descriptors of the process: its sockets come and go with its connections. */
const openFds = async (pid: number) => (await readdir(`/proc/${pid}/fd`)).length;

/** A raw connection from `localAddress` that sends `head` (and `body`) and then reads nothing and sends nothing. */
function stalled(port: number, localAddress: string, head: string, body?: Buffer): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => {
      socket.write(head);
      if (body) socket.write(body);
      socket.pause();
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

/** Reads one whole response on a fresh connection (the status line and the body's length). */
function rawResponse(port: number, localAddress: string, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => socket.write(head));
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

for (const db of DB_KINDS) {
  describe(`stalled clients hold bounded memory and are dropped (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let port: number;
    const blob = randomBytes(BLOB_BYTES);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const repo = 'admin/stall/blob';
    const sockets: net.Socket[] = [];
    /** An anonymous pull token, as an OCI client fetches one before pulling a public repository. */
    let anonymous = '';

    before(async () => {
      shelf = await startShelf({
        db,
        env: {
          SHELF_LIMITS_IDLE_TIMEOUT: String(IDLE_SECONDS),
          SHELF_LIMITS_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
        },
      });
      port = Number(new URL(shelf.url).port);
      const res = await fetch(`${shelf.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
        method: 'POST',
        body: blob,
        headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' },
      });
      assert.equal(res.status, 201, await res.text());
      const token = await fetch(`${shelf.url}/v2/token?service=shelf&scope=repository:${repo}:pull`);
      anonymous = `Bearer ${((await token.json()) as { token: string }).token}`;
    });
    after(async () => {
      for (const s of sockets) s.destroy();
      await shelf?.stop();
    });

    test('400 stalled anonymous downloads and 100 stalled uploads: flat memory, others served, all dropped when idle', async () => {
      const pid = shelf.process.pid!;
      // Warm up: one whole anonymous download, so the baseline includes what serving costs.
      const warm = await fetch(`${shelf.url}/v2/${repo}/blobs/${digest}`, { headers: { authorization: anonymous } });
      assert.equal(Buffer.compare(Buffer.from(await warm.arrayBuffer()), blob), 0);
      const fdsBefore = await openFds(pid);
      const rssBefore = await rssMiB(pid);
      // Peaks, sampled while the stalled connections pile up (a loaded machine serves them slowly).
      let peakFds = fdsBefore;
      let peakRss = rssBefore;
      const sampler = setInterval(() => {
        void Promise.all([openFds(pid), rssMiB(pid)]).then(([fds, rss]) => {
          peakFds = Math.max(peakFds, fds);
          peakRss = Math.max(peakRss, rss);
        }, () => undefined);
      }, 200);

      const get = `GET /v2/${repo}/blobs/${digest} HTTP/1.1\r\nHost: shelf\r\nAuthorization: ${anonymous}\r\n\r\n`;
      for (const address of DOWNLOADERS) {
        const batch = await Promise.all(Array.from({ length: PER_DOWNLOADER }, () => stalled(port, address, get)));
        sockets.push(...batch);
      }
      // Uploads that stop sending: anonymous ones (refused, the rest of the body never comes) and
      // the owner's own chunked uploads, each 64 KiB into an 8 MiB PATCH.
      const anonymousUpload = `PATCH /v2/${repo}/blobs/uploads/x HTTP/1.1\r\nHost: shelf\r\nContent-Length: ${BLOB_BYTES}\r\n\r\n`;
      sockets.push(...(await Promise.all(Array.from({ length: 50 }, () => stalled(port, '127.0.0.6', anonymousUpload, randomBytes(65536))))));
      const uploads = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const r = await fetch(`${shelf.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } });
          assert.equal(r.status, 202);
          return r.headers.get('location')!;
        }),
      );
      const head = (location: string) =>
        `PATCH ${location} HTTP/1.1\r\nHost: shelf\r\nAuthorization: ${ADMIN}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BLOB_BYTES}\r\n\r\n`;
      sockets.push(...(await Promise.all(uploads.map((location) => stalled(port, '127.0.0.7', head(location), randomBytes(65536))))));

      // Every connection holds a socket, and every download the server got to its file too.
      await waitFor('the server to take up the stalled clients', async () => peakFds >= fdsBefore + 500 + 300, 60_000);
      await sleep(1000);

      // Everyone else is served meanwhile: a whole download, and the API.
      const other = await fetch(`${shelf.url}/v2/${repo}/blobs/${digest}`, { headers: { authorization: anonymous } });
      assert.equal(other.status, 200);
      assert.equal(Buffer.compare(Buffer.from(await other.arrayBuffer()), blob), 0);
      assert.equal((await fetch(`${shelf.url}/version`)).status, 200);
      // A full address: its next connection is refused with a 503 in both envelopes, while
      // other addresses are served. (Bare connections count as much as busy ones.)
      const full = '127.0.0.8';
      sockets.push(...(await Promise.all(Array.from({ length: PER_ADDRESS }, () => stalled(port, full, '')))));
      const capped = await rawResponse(port, full, 'GET /version HTTP/1.1\r\nHost: shelf\r\n\r\n');
      assert.match(capped, /^HTTP\/1\.1 503/);
      assert.match(capped, /"error":\{"code":503/);
      assert.match(capped, /"errors":\[\{"code":"TOOMANYREQUESTS"/);
      assert.match(await rawResponse(port, '127.0.0.9', 'GET /version HTTP/1.1\r\nHost: shelf\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200/);

      // Idle ones are dropped after the idle timeout: the server's descriptors return to where they were.
      await waitFor('the stalled connections to be dropped', async () => (await openFds(pid)) <= fdsBefore + 5, IDLE_SECONDS * 1000 * 4);
      clearInterval(sampler);
      const growth = peakRss - rssBefore;
      console.log(`[${db}] RSS ${rssBefore.toFixed(0)} MiB before, at most ${peakRss.toFixed(0)} MiB with ${sockets.length} stalled connections (+${growth.toFixed(0)} MiB); ${peakFds} fds at most`);
      assert.ok(growth < RSS_GROWTH_LIMIT_MIB, `RSS grew by ${growth.toFixed(0)} MiB with ${sockets.length} stalled clients`);
      assert.equal((await fetch(`${shelf.url}/version`)).status, 200);
      // And the full address is served again.
      assert.match(await rawResponse(port, full, 'GET /version HTTP/1.1\r\nHost: shelf\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200/);
    });

    test('a slow but steady download is not cut by the idle timeout', async () => {
      const res = await fetch(`${shelf.url}/v2/${repo}/blobs/${digest}`, { headers: { authorization: anonymous } });
      const reader = res.body!.getReader();
      let total = 0;
      const started = Date.now();
      // Reads a little every 500 ms for longer than the idle timeout.
      while (Date.now() - started < (IDLE_SECONDS + 1) * 1000) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
        await sleep(500);
      }
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
      }
      assert.equal(total, BLOB_BYTES);
    });
  });
}
