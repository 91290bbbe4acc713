import http from 'node:http';
import net from 'node:net';

/** Pipes `client` to a new connection to host:port both ways; both end together. */
export function forward(client: net.Socket, host: string, port: number, sockets: Set<net.Socket>): net.Socket {
  const upstream = net.connect(port, host);
  sockets.add(client).add(upstream);
  client.pipe(upstream);
  upstream.pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
    sockets.delete(client);
    sockets.delete(upstream);
  };
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
  return upstream;
}

/** A TCP proxy in front of a server that counts the bytes each way; `cut()` drops every connection. */
export interface CountingProxy {
  url: string;
  /** Bytes from clients to the server, and back, since the last reset. */
  up: number;
  down: number;
  reset(): void;
  /** Resolves once `up` (or `down`) has passed `bytes`. */
  whenUp(bytes: number): Promise<void>;
  whenDown(bytes: number): Promise<void>;
  /** Drops every open connection (new ones still go through). */
  cut(): void;
  close(): Promise<void>;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<net.Socket>();
  const waiters: Array<{ dir: 'up' | 'down'; bytes: number; resolve: () => void }> = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (proxy[w.dir] >= w.bytes) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const server = net.createServer((client) => {
    const upstream = forward(client, hostname, Number(port), sockets);
    client.on('data', (d: Buffer) => {
      proxy.up += d.length;
      check();
    });
    upstream.on('data', (d: Buffer) => {
      proxy.down += d.length;
      check();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: CountingProxy = {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    up: 0,
    down: 0,
    reset() {
      proxy.up = 0;
      proxy.down = 0;
    },
    whenUp: (bytes) => new Promise((resolve) => (waiters.push({ dir: 'up', bytes, resolve }), check())),
    whenDown: (bytes) => new Promise((resolve) => (waiters.push({ dir: 'down', bytes, resolve }), check())),
    cut() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}

/**
 * A Shelf shown as another Sylabs-compatible server would be: `/version` names no Shelf and
 * Shelf's own `/api/` is not there; the Library, builder and OCI protocols (WebSockets too) pass
 * through with the client's Host, so the server's answers point back through this front.
 */
export async function startForeignFront(target: string): Promise<{ url: string; host: string; seen: string[]; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    seen.push(req.url!.split('?')[0]!);
    if (req.url === '/version') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: { version: 'v1.6.0', apiVersion: '2.0.0-alpha.2' } }));
    if (req.url!.startsWith('/api/')) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":404,"message":"not found"}}');
    const upstream = http.request({ host: hostname, port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    seen.push(req.url!.split('?')[0]!);
    const upstream = forward(client, hostname, Number(port), sockets);
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length) upstream.write(head);
  });
  server.on('connection', (s: net.Socket) => void sockets.add(s.on('close', () => sockets.delete(s))));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url: `http://${host}`,
    host,
    seen,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
