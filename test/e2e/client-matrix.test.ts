import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, FIXTURES, startShelf, type TestShelf } from '../helpers/shelf.js';
import { libraryPull, libraryPush } from './current-clients/library.js';
import { orasPull, orasPush } from './current-clients/oras.js';

/**
 * Every client generation against every other: each cell pushes a fixture SIF with one client
 * into its own container and pulls it back with another, byte for byte, on SQLite and
 * PostgreSQL. Old clients are the Go clients of `test/e2e/clients` (the libraries Apptainer 1.0
 * linked); current ones are the wire replicas of `test/e2e/current-clients`, which make the
 * checks the real clients make (SIF config architecture, Content-Type of manifests, ranges).
 */
const libclient = path.join(CLIENTS, 'libclient');
const orasclient = path.join(CLIENTS, 'orasclient');

interface Cell {
  shelf: TestShelf;
  /** `admin/matrix/<container>` */
  repository: string;
  file: string;
  arch: string;
  out: string;
}

const hostOf = (shelf: TestShelf) => new URL(shelf.url).host;
const basic = { username: 'admin', password: ADMIN_TOKEN };
const library = (shelf: TestShelf) => ({ base: shelf.url, token: ADMIN_TOKEN });

async function go(bin: string, args: string[]): Promise<void> {
  const r = await run(bin, args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`${path.basename(bin)} ${args.join(' ')}: ${r.stderr || r.stdout}`);
}

const PUSHERS: Array<[string, (c: Cell) => Promise<unknown>]> = [
  ['libclient 1.0 (Library API)', (c) => go(libclient, ['--url', c.shelf.url, '--token', ADMIN_TOKEN, 'push', c.file, `${c.repository}:v1`])],
  ['orasclient 1.0 (oras-go 1)', (c) => go(orasclient, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'push', c.file, `oras://${hostOf(c.shelf)}/${c.repository}:v1`])],
  ['apptainer oras://', (c) => orasPush('apptainer', c.file, { base: c.shelf.url, repository: c.repository, tag: 'v1', basic }, 'pushed by apptainer')],
  ['singularityce oras://', (c) => orasPush('singularityce', c.file, { base: c.shelf.url, repository: c.repository, tag: 'v1', basic })],
  ['apptainer library:// (oci-redirect)', (c) => libraryPush({ flavour: 'apptainer' }, library(c.shelf), c.file, `${c.repository}:v1`, 'pushed by apptainer')],
  ['singularityce library:// (oci-redirect)', (c) => libraryPush({ flavour: 'singularityce' }, library(c.shelf), c.file, `${c.repository}:v1`, 'pushed by singularityce')],
  ['current library:// (legacy path)', (c) => libraryPush({ flavour: 'apptainer', legacy: true }, library(c.shelf), c.file, `${c.repository}:v1`, 'legacy')],
];

const PULLERS: Array<[string, (c: Cell) => Promise<unknown>]> = [
  ['libclient 1.0', (c) => go(libclient, ['--url', c.shelf.url, '--token', ADMIN_TOKEN, 'pull', `${c.repository}:v1`, c.out, '--arch', c.arch])],
  ['orasclient 1.0', (c) => go(orasclient, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'pull', `oras://${hostOf(c.shelf)}/${c.repository}:v1`, c.out])],
  ['apptainer oras://', (c) => orasPull('apptainer', { base: c.shelf.url, repository: c.repository, tag: 'v1', basic }, c.arch, c.out)],
  ['singularityce oras://', (c) => orasPull('singularityce', { base: c.shelf.url, repository: c.repository, tag: 'v1', basic }, c.arch, c.out)],
  ['apptainer library:// (oci-redirect)', (c) => libraryPull({ flavour: 'apptainer' }, library(c.shelf), `${c.repository}:v1`, c.arch, c.out)],
  ['singularityce library:// (oci-redirect)', (c) => libraryPull({ flavour: 'singularityce' }, library(c.shelf), `${c.repository}:v1`, c.arch, c.out)],
  ['current library:// (legacy path)', (c) => libraryPull({ flavour: 'apptainer', legacy: true }, library(c.shelf), `${c.repository}:v1`, c.arch, c.out)],
];

const FIXTURE_OF = [
  { file: 'minimal-amd64.sif', arch: 'amd64' },
  { file: 'minimal-arm64.sif', arch: 'arm64' },
  { file: 'signed-pgp-rsa.sif', arch: 'amd64' },
];

function printMatrix(db: string, results: Map<string, string>): string {
  const width = Math.max(...PUSHERS.map(([n]) => n.length)) + 2;
  const lines = [`pushed by \\ pulled by (${db}); columns: ${PULLERS.map(([n], j) => `${j + 1}=${n}`).join(', ')}`];
  lines.push(`${''.padEnd(width)}${PULLERS.map((_, j) => String(j + 1).padEnd(6)).join('')}`);
  for (const [pusher] of PUSHERS) {
    lines.push(`${pusher.padEnd(width)}${PULLERS.map(([puller]) => (results.get(`${pusher}|${puller}`) ?? '?').padEnd(6)).join('')}`);
  }
  return lines.join('\n');
}

for (const db of DB_KINDS) {
  describe(`client matrix: pushed by × pulled by (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let work: string;
    const results = new Map<string, string>();
    before(async () => {
      shelf = await startShelf({ db });
      work = await mkdtemp(path.join(tmpdir(), 'shelf-matrix-'));
    });
    after(async () => {
      console.log(printMatrix(db, results));
      await shelf?.stop();
      await rm(work, { recursive: true, force: true });
    });

    PUSHERS.forEach(([pusher, push], i) => {
      test(`pushed by ${pusher}`, async () => {
        const failures: string[] = [];
        for (const [j, [puller, pull]] of PULLERS.entries()) {
          const fixture = FIXTURE_OF[(i + j) % FIXTURE_OF.length]!;
          const cell: Cell = {
            shelf,
            repository: `admin/matrix/p${i}-q${j}`,
            file: path.join(FIXTURES, fixture.file),
            arch: fixture.arch,
            out: path.join(work, `p${i}-q${j}.sif`),
          };
          try {
            await push(cell);
            await pull(cell);
            assert.deepEqual(await readFile(cell.out), await readFile(cell.file), 'pulled bytes differ from the pushed file');
            results.set(`${pusher}|${puller}`, 'pass');
          } catch (err) {
            results.set(`${pusher}|${puller}`, 'FAIL');
            failures.push(`${pusher} → ${puller} (${fixture.file}): ${(err as Error).message}`);
          }
        }
        assert.deepEqual(failures, []);
      });
    });
  });
}
