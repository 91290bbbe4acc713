import assert from 'node:assert/strict';
import { copyFile, readFile, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import https from 'node:https';
import { lookup } from 'node:dns/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { isLoopback } from '../../src/ops/tls.js';
import { run } from '../helpers/run.js';
import { makeCa, type TestCa } from '../helpers/tls.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, startShelf, type TestShelf } from '../helpers/shelf.js';

const libclient = path.join(CLIENTS, 'libclient');
const oras = path.join(CLIENTS, 'orasclient');

/** The serial number of the certificate a new TLS connection is shown. */
async function servedSerial(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('TLS built in: --tls-cert/--tls-key, HTTP/2, reload on SIGHUP', { concurrency: false }, () => {
  let ca: TestCa;
  let caPem: Buffer;
  let shelf: TestShelf;
  let certFile: string;
  let keyFile: string;
  let port: number;
  const name = hostname();

  before(async () => {
    ca = await makeCa();
    caPem = await readFile(ca.caFile);
    const first = await ca.issue('first', { dns: ['localhost', name], ip: ['127.0.0.1'] });
    certFile = path.join(ca.dir, 'server.crt');
    keyFile = path.join(ca.dir, 'server.key');
    await copyFile(first.cert, certFile);
    await copyFile(first.key, keyFile);
    shelf = await startShelf({ env: { SHELF_TLS_CERT: certFile, SHELF_TLS_KEY: keyFile, SHELF_LOG_LEVEL: 'info' } });
    port = Number(new URL(shelf.url).port);
  });
  after(async () => {
    await shelf?.stop();
    if (ca) await rm(ca.dir, { recursive: true, force: true });
  });

  test('serves https, HTTP/2 to clients that offer h2 and HTTP/1.1 to the others', async () => {
    assert.match(shelf.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const h2 = http2.connect(shelf.url, { ca: caPem });
    try {
      const { status, alpn } = await new Promise<{ status: number; alpn: string | false | undefined }>((resolve, reject) => {
        const req = h2.request({ ':path': '/healthz' });
        req.on('response', (headers) => {
          req.resume();
          resolve({ status: Number(headers[':status']), alpn: h2.alpnProtocol });
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 200);
      assert.equal(alpn, 'h2');
    } finally {
      h2.close();
    }
    const h1 = await new Promise<{ status: number; version: string }>((resolve, reject) => {
      https.get(`${shelf.url}/readyz`, { ca: caPem }, (res) => {
        res.resume();
        resolve({ status: res.statusCode!, version: res.httpVersion });
      }).on('error', reject);
    });
    assert.deepEqual(h1, { status: 200, version: '1.1' });
  });

  test('over HTTP/2 an answer sent before the body was read arrives as itself (no connection header), and the session carries on', async () => {
    const h2 = http2.connect(shelf.url, { ca: caPem });
    try {
      const ask = (headers: http2.OutgoingHttpHeaders, body?: Buffer) =>
        new Promise<{ status: number; connection: unknown; text: string }>((resolve, reject) => {
          const req = h2.request(headers);
          let text = '';
          let status = 0;
          let connection: unknown;
          req.setEncoding('utf8');
          req.on('response', (h) => {
            status = Number(h[':status']);
            connection = h.connection;
          });
          req.on('data', (d: string) => (text += d));
          req.on('end', () => resolve({ status, connection, text }));
          // The server may reset the stream it no longer reads once it has answered.
          req.on('error', (err) => (status ? resolve({ status, connection, text }) : reject(err)));
          req.end(body);
        });
      const big = Buffer.alloc(2 << 20, 0x20);
      const early = await ask(
        { ':method': 'POST', ':path': '/v1/images', authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', 'content-length': String(big.length) },
        big,
      );
      assert.equal(early.status, 413, early.text);
      assert.equal(early.connection, undefined);
      assert.match((JSON.parse(early.text) as { error: { message: string } }).error.message, /larger than 1048576 bytes/);
      const next = await ask({ ':path': '/healthz' });
      assert.equal(next.status, 200);
    } finally {
      h2.close();
    }
  });

  test('the real Library client pushes and pulls over https with the test CA (SSL_CERT_FILE), and refuses without it', async () => {
    const env = { SSL_CERT_FILE: ca.caFile };
    const file = path.join(FIXTURES, 'minimal-amd64.sif');
    const push = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', file, 'admin/tls/lib:v1'], { env });
    assert.equal(push.code, 0, push.stderr);
    const out = path.join(ca.dir, 'pulled.sif');
    const pull = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'pull', 'admin/tls/lib:v1', out, '--arch', 'amd64'], { env });
    assert.equal(pull.code, 0, pull.stderr);
    assert.deepEqual(await readFile(out), await readFile(file));
    const untrusted = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'status'], { env: { SSL_CERT_FILE: path.join(tmpdir(), 'no-such-ca.pem') } });
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr + untrusted.stdout, /certificate|x509/i);
  });

  test('the real ORAS client pushes and pulls over https (by host name: it uses plain http for loopback addresses)', async (t) => {
    const resolved = await lookup(name).catch(() => null);
    if (!resolved || !isLoopback(resolved.address)) return t.skip(`${name} does not resolve to a loopback address here`);
    const env = { SSL_CERT_FILE: ca.caFile };
    const file = path.join(FIXTURES, 'minimal-arm64.sif');
    const ref = `${name}:${port}/admin/tls/oras:v1`;
    const push = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'push', file, ref], { env });
    assert.equal(push.code, 0, push.stderr);
    const out = path.join(ca.dir, 'oras.sif');
    const pull = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'pull', ref, out], { env });
    assert.equal(pull.code, 0, pull.stderr);
    assert.deepEqual(await readFile(out), await readFile(file));
  });

  test('SIGHUP reloads the certificate for new connections; an open connection carries on', async () => {
    const before = await servedSerial(port, caPem);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: caPem });
    const get = (p: string) =>
      new Promise<{ status: number; serial: string; socket: tls.TLSSocket }>((resolve, reject) => {
        https.get(`${shelf.url}${p}`, { agent }, (res) => {
          const socket = res.socket as tls.TLSSocket;
          const serial = socket.getPeerCertificate().serialNumber;
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, serial, socket }));
        }).on('error', reject);
      });
    const opened = await get('/healthz');
    assert.equal(opened.serial, before);

    const second = await ca.issue('second', { dns: ['localhost', name], ip: ['127.0.0.1'] });
    await copyFile(second.cert, certFile);
    await copyFile(second.key, keyFile);
    shelf.process.kill('SIGHUP');
    let after = before;
    for (let i = 0; i < 100 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await servedSerial(port, caPem);
    }
    assert.notEqual(after, before, 'new connections see the new certificate');
    const reused = await get('/healthz');
    assert.equal(reused.status, 200);
    assert.equal(reused.socket, opened.socket, 'the connection opened before the reload was not dropped');
    assert.equal(reused.serial, before);
    agent.destroy();
    assert.match(shelf.output(), /TLS certificate and key reloaded/);
    assert.equal(shelf.process.exitCode, null, 'SIGHUP does not stop the server');
  });

  test('a missing or mismatched key stops the start with one line, exit 2', async () => {
    const other = await ca.issue('other', { dns: ['localhost'], ip: [] });
    const start = (cert: string, key: string) =>
      run(process.execPath, [path.join(import.meta.dirname, '../../dist/cli/main.js'), 'serve', '--listen', '127.0.0.1:0', '--data', path.join(ca.dir, 'data'), '--tls-cert', cert, '--tls-key', key]);
    const mismatched = await start(certFile, other.key);
    assert.equal(mismatched.code, 2, mismatched.stderr);
    assert.match(mismatched.stderr, /^shelf: TLS certificate .* do not make a usable pair/);
    const missing = await start(path.join(ca.dir, 'absent.crt'), keyFile);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read TLS certificate/);
    const half = await run(process.execPath, [path.join(import.meta.dirname, '../../dist/cli/main.js'), 'serve', '--tls-cert', certFile]);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /give both --tls-cert and --tls-key/);
  });

  test('plain HTTP is for loopback: other addresses draw a warning', () => {
    for (const host of ['127.0.0.1', '127.3.4.5', '::1', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopback(host), true, host);
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'shelf.example.org', '192.168.1.1']) assert.equal(isLoopback(host), false, host);
  });
});
