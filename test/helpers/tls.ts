import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from './run.js';

/** A throwaway certificate authority (openssl), and server certificates it signs. */
export interface TestCa {
  dir: string;
  /** The CA certificate (PEM): give it to clients as SSL_CERT_FILE / `ca`. */
  caFile: string;
  /** A new key and certificate for these DNS names and IP addresses, written to `name`.{key,crt}. */
  issue(name: string, hosts: { dns: string[]; ip: string[] }): Promise<{ cert: string; key: string }>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { env: { OPENSSL_CONF: '/dev/null' }, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed in ${cwd}: ${r.stderr}`);
}

export async function makeCa(): Promise<TestCa> {
  const dir = await mkdtemp(path.join(tmpdir(), 'shelf-ca-'));
  const caKey = path.join(dir, 'ca.key');
  const caFile = path.join(dir, 'ca.crt');
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', '/CN=Shelf test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  let serial = 1000;
  return {
    dir,
    caFile,
    async issue(name, hosts) {
      const key = path.join(dir, `${name}.key`);
      const csr = path.join(dir, `${name}.csr`);
      const cert = path.join(dir, `${name}.crt`);
      const ext = path.join(dir, `${name}.ext`);
      const san = [...hosts.dns.map((d) => `DNS:${d}`), ...hosts.ip.map((i) => `IP:${i}`)].join(',');
      await writeFile(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`);
      await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`], dir);
      await openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', String(serial++), '-days', '1', '-out', cert, '-extfile', ext], dir);
      return { cert, key };
    },
  };
}
