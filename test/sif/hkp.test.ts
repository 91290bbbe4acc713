import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FileSource, HkpKeys, verifySif } from '../../src/sif/index.js';
import { run } from '../helpers/run.js';
import { FIXTURES, ROOT } from '../helpers/shelf.js';

/**
 * Key lookup over HKP as Apptainer does it (`op=get&search=0x<key id>&exact=on`), from a
 * keyserver that holds one key. Shelf's own keyserver is tested with the real key client.
 */
let server: http.Server;
let url: string;
const requests: string[] = [];

before(async () => {
  const armored = await readFile(path.join(FIXTURES, 'keys/pgp-rsa3072-public.asc'), 'utf8');
  server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    const search = (q.get('search') ?? '').toLowerCase();
    if (new URL(req.url ?? '/', 'http://x').pathname === '/pks/lookup' && q.get('op') === 'get' && '8802bdf6faf76328'.endsWith(search.replace(/^0x/, ''))) {
      res.writeHead(200, { 'content-type': 'application/pgp-keys' }).end(armored);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

test('keys come from the keyserver by issuer key ID; a missing key is named', async () => {
  const source = await FileSource.open(path.join(FIXTURES, 'signed-pgp-two-signers.sif'));
  try {
    const r = await verifySif(source, new HkpKeys(url));
    assert.equal(r.signatures[0]!.ok, true);
    assert.equal(r.signatures[0]!.signer?.source, 'REMOTE');
    assert.equal(r.signatures[1]!.error, 'signature object 5 not valid: signing key 0x407BA33B0978DF5A not found');
    assert.ok(requests.includes('/pks/lookup?op=get&search=0x8802bdf6faf76328&exact=on'), requests.join('\n'));
  } finally {
    await source.close();
  }
});

test('shelf verify --keyserver', async () => {
  const ok = await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'verify', path.join(FIXTURES, 'signed-pgp-rsa.sif'), '--keyserver', url]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /\[REMOTE\]   Fingerprint: 5D60487627A589F3F579EF9D8802BDF6FAF76328/);
  const missing = await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'verify', path.join(FIXTURES, 'signed-pgp-two-signers.sif'), '--keyserver', url]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'shelf: signature object 5 not valid: signing key 0x407BA33B0978DF5A not found\n');
  const down = await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'verify', path.join(FIXTURES, 'signed-pgp-rsa.sif'), '--keyserver', 'http://127.0.0.1:1']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /^shelf: .*keyserver http:\/\/127\.0\.0\.1:1/);
});

test('keyserver URLs: hkp is http on port 11371, hkps is https, the path is dropped; key IDs as Apptainer sends them', () => {
  assert.equal(new HkpKeys('hkp://keys.example').lookupUrl('00AB').toString(), 'http://keys.example:11371/pks/lookup?op=get&search=0xab&exact=on');
  assert.equal(new HkpKeys('hkps://keys.example/some/path').lookupUrl('8802BDF6FAF76328').toString(), 'https://keys.example/pks/lookup?op=get&search=0x8802bdf6faf76328&exact=on');
  assert.equal(new HkpKeys('http://127.0.0.1:8080').lookupUrl('5D60487627A589F3F579EF9D8802BDF6FAF76328').search, '?op=get&search=0x5d60487627a589f3f579ef9d8802bdf6faf76328&exact=on');
});

test('one lookup per key ID however many signatures name it; an endless answer is cut off', async () => {
  const source = await FileSource.open(path.join(FIXTURES, 'signed-pgp-two-signers.sif'));
  const big = http.createServer((_req, res) => {
    res.writeHead(200);
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const pump = () => {
      while (res.write(chunk));
      res.once('drain', pump);
    };
    pump();
    res.on('close', () => res.removeAllListeners('drain'));
  });
  await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
  try {
    const before = requests.length;
    const r = await verifySif(source, new HkpKeys(url));
    assert.equal(r.ok, false);
    assert.equal(requests.length - before, 2, 'one request per distinct key ID');
    const flood = await verifySif(source, new HkpKeys(`http://127.0.0.1:${(big.address() as AddressInfo).port}`));
    assert.equal(flood.ok, false);
    assert.equal(flood.signatures[0]!.error, 'signature object 4 not valid: keyserver answer larger than 1048576 bytes');
  } finally {
    big.closeAllConnections();
    await new Promise<void>((r) => big.close(() => r()));
    await source.close();
  }
});
