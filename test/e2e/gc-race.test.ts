import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../helpers/run.js';
import { ADMIN_TOKEN, CLIENTS, DB_KINDS, api, startShelf, type TestShelf } from '../helpers/shelf.js';
import { makeLargeSif } from '../helpers/sif.js';

const libclient = path.join(CLIENTS, 'libclient');
const oras = path.join(CLIENTS, 'orasclient');
const fileSha = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');
const ITERATIONS = 10;

for (const db of DB_KINDS) {
  describe(`garbage collection racing real clients' deletes and re-pushes (${db})`, { concurrency: false }, () => {
    let shelf: TestShelf;
    let work: string;
    let libFile: string;
    let orasFile: string;
    const lib = (args: string[]) => run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, ...args]);
    const orasc = (args: string[]) => run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, ...args]);
    const host = () => new URL(shelf.url).host;
    const basic = `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`;
    let refused = 0;
    const gc = async () => {
      const res = await api(shelf)('/api/admin/gc', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 200);
      return ((await res.json()) as { data: { blobs: Array<{ name: string }> } }).data;
    };
    /**
     * An ORAS push, again when its manifest was refused because a collection took a blob the
     * client had just found present (and so did not upload): that blob is then unknown.
     */
    const orasPush = async (file: string, repo: string) => {
      const layer = `sha256:${await fileSha(file)}`;
      const config = `sha256:${createHash('sha256').update('{}').digest('hex')}`;
      let r = await orasc(['push', file, `${host()}/${repo}`]);
      for (let attempt = 0; r.code !== 0 && attempt < 3; attempt++) {
        assert.match(r.stderr, /failed commit on ref "manifest-sha256:[0-9a-f]+": unexpected status: 400/, r.stderr);
        const known = await Promise.all(
          [layer, config].map(async (d) => (await fetch(`${shelf.url}/v2/${repo.split(':')[0]}/blobs/${d}`, { method: 'HEAD', headers: { authorization: basic } })).status),
        );
        assert.ok(known.includes(404), `manifest refused, yet its blobs are all there (${known.join(', ')})`);
        refused++;
        r = await orasc(['push', file, `${host()}/${repo}`]);
      }
      assert.equal(r.code, 0, r.stderr);
    };

    before(async () => {
      shelf = await startShelf({ db, env: { SHELF_GC_GRACE: '0', SHELF_GC_INTERVAL: '0' } });
      work = await mkdtemp(path.join(tmpdir(), 'shelf-gc-race-'));
      libFile = path.join(work, 'lib.sif');
      orasFile = path.join(work, 'oras.sif');
      await makeLargeSif(libFile, work, 3 << 20);
      await makeLargeSif(orasFile, work, 3 << 20);
    });
    after(async () => {
      await shelf?.stop();
      await rm(work, { recursive: true, force: true });
    });

    test('push, delete, then collect while pushing the same content again: it always pulls back intact', async () => {
      let collected = 0;
      for (let i = 0; i < ITERATIONS; i++) {
        assert.equal((await lib(['push', libFile, 'admin/race/lib:x'])).code, 0);
        await orasPush(orasFile, 'admin/race/oras:y');
        for (const ref of ['admin/race/lib:x', 'admin/race/oras:y']) {
          const del = await lib(['delete', ref, '--arch', 'amd64']);
          assert.equal(del.code, 0, del.stderr);
        }
        const [collections] = await Promise.all([
          (async () => {
            const reports = [];
            for (let n = 0; n < 4; n++) reports.push(await gc());
            return reports;
          })(),
          lib(['push', libFile, 'admin/race/lib:x']).then((r) => assert.equal(r.code, 0, `${r.stderr}\n${shelf.output()}`)),
          orasPush(orasFile, 'admin/race/oras:y'),
        ]);
        collected += collections.reduce((n, r) => n + r.blobs.length, 0);

        const libOut = path.join(work, `lib-${i}.sif`);
        const pull = await lib(['pull', 'admin/race/lib:x', libOut, '--arch', 'amd64']);
        assert.equal(pull.code, 0, pull.stderr);
        assert.equal(await fileSha(libOut), await fileSha(libFile), `iteration ${i}: library image`);
        const orasOut = path.join(work, `oras-${i}.sif`);
        const orasPull = await orasc(['pull', `${host()}/admin/race/oras:y`, orasOut]);
        assert.equal(orasPull.code, 0, orasPull.stderr);
        assert.equal(await fileSha(orasOut), await fileSha(orasFile), `iteration ${i}: oras image`);
        await rm(libOut);
        await rm(orasOut);
        const doctor = await api(shelf)('/api/admin/doctor');
        assert.deepEqual(((await doctor.json()) as { data: { problems: unknown[] } }).data.problems, [], `iteration ${i}`);
      }
      assert.ok(collected > 0, 'the collections never removed anything');
      console.log(`# ${db}: ${collected} blobs collected during re-pushes, ${refused} ORAS manifests refused and pushed again`);
    });
  });
}
