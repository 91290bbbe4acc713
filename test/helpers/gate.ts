import net from 'node:net';
import { forward } from './proxy.js';

/**
 * A TCP forwarder on a fixed loopback port that can be shut (every connection dropped, new ones
 * refused, as when the server behind it stops) and opened again on the same port.
 */
export interface Gate {
  port: number;
  shut(): Promise<void>;
  open(): Promise<void>;
  close(): Promise<void>;
}

export async function startGate(targetHost: string, targetPort: number): Promise<Gate> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;
  const listen = async () => {
    const s = net.createServer((client) => forward(client, targetHost, targetPort, sockets));
    await new Promise<void>((resolve, reject) => s.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
    port = (s.address() as net.AddressInfo).port;
    server = s;
  };
  const shut = async () => {
    const s = server;
    server = null;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return {
    get port() {
      return port;
    },
    shut,
    open: async () => {
      if (!server) await listen();
    },
    close: shut,
  };
}
