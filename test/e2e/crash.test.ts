import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openMetaDb } from '../../src/meta/db.js';
import { run } from '../helpers/run.js';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ADMIN_TOKEN, DB_KINDS, ROOT, freshPostgres, startShelf, type DbKind, type TestShelf } from '../helpers/shelf.js';
import { startSwift, type SwiftServer } from '../helpers/swift.js';
import { makeLargeSif } from '../helpers/sif.js';

/**
 * The blob stores the crash test runs against. Another store joins with an entry (S3, e.g.
 * behind `SHELF_TEST_S3`): `env` configures `shelf serve` for it; `remove` and `corrupt`
 * damage one stored blob from outside; `orphans` lists committed blob names (for the
 * bytes-without-row check) and `temps` temporary object names.
 */
export interface CrashStore {
  name: string;
  /** Databases it runs with (default: all). */
  dbs?: DbKind[];
  setup?: () => Promise<void>;
  teardown?: () => Promise<void>;
  env: (dataDir: string) => Record<string, string>;
  remove: (dataDir: string, digest: string) => Promise<void>;
  corrupt: (dataDir: string, digest: string) => Promise<void>;
  blobs: (dataDir: string) => Promise<string[]>;
  temps: (dataDir: string) => Promise<string[]>;
}

const fsBlobFile = (dataDir: string, digest: string) => path.join(dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

export const CRASH_STORES: CrashStore[] = [
  {
    name: 'filesystem',
    env: () => ({}),
    remove: (dataDir, digest) => unlink(fsBlobFile(dataDir, digest)),
    corrupt: async (dataDir, digest) => {
      const file = fsBlobFile(dataDir, digest);
      const bytes = await readFile(file);
      bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
      await writeFile(file, bytes);
    },
    blobs: async (dataDir) => {
      const out: string[] = [];
      for (const fan of await readdir(path.join(dataDir, 'blobs', 'sha256')).catch(() => [])) {
        for (const hex of await readdir(path.join(dataDir, 'blobs', 'sha256', fan))) out.push(`sha256:${hex}`);
      }
      return out;
    },
    temps: (dataDir) => readdir(path.join(dataDir, 'uploads')).catch(() => []),
  },
  s3Store(),
];

/** S3 through a local Swift, with PostgreSQL: the scale-out set-up. Each data folder gets its own bucket. */
function s3Store(): CrashStore {
  let swift: SwiftServer | null = null;
  const buckets = new Map<string, string>();
  const bucketOf = (dataDir: string) => {
    if (!buckets.has(dataDir)) buckets.set(dataDir, `crash-${randomBytes(4).toString('hex')}`);
    return buckets.get(dataDir)!;
  };
  const keyOf = (digest: string) => `blobs/sha256/${digest.slice(7)}`;
  const keysUnder = async (dataDir: string, prefix: string) => {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await swift!.client().send(new ListObjectsV2Command({ Bucket: bucketOf(dataDir), Prefix: prefix, ContinuationToken: token }));
      out.push(...(page.Contents ?? []).map((o) => o.Key!.slice(prefix.length)));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  };
  return {
    name: 's3',
    dbs: ['postgres'],
    setup: async () => {
      swift = await startSwift();
    },
    teardown: async () => swift?.stop(),
    env: (dataDir) => ({ ...swift!.env, SHELF_BLOBS: swift!.blobsUrl({ bucket: bucketOf(dataDir) }) }),
    remove: async (dataDir, digest) => {
      await swift!.client().send(new DeleteObjectCommand({ Bucket: bucketOf(dataDir), Key: keyOf(digest) }));
    },
    corrupt: async (dataDir, digest) => {
      const got = await swift!.client().send(new GetObjectCommand({ Bucket: bucketOf(dataDir), Key: keyOf(digest) }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
      await swift!.client().send(new PutObjectCommand({ Bucket: bucketOf(dataDir), Key: keyOf(digest), Body: bytes }));
    },
    blobs: async (dataDir) => (await keysUnder(dataDir, 'blobs/sha256/')).map((hex) => `sha256:${hex}`),
    temps: async (dataDir) => [...new Set((await keysUnder(dataDir, 'uploads/')).map((k) => k.split('/')[0]!))],
  };
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const basic = `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`;
const CHUNK = 64 << 10;
const PART_SIZE = 256 << 10;
const JOBS = 40;
const KILL_ROUNDS = 8;
const WORKERS = 3;

type Kind = 'v1' | 'v2-single' | 'v2-multipart' | 'oci-monolithic' | 'oci-chunked';
const KINDS: Kind[] = ['v1', 'v2-single', 'v2-multipart', 'oci-monolithic', 'oci-chunked'];

interface Job {
  n: number;
  kind: Kind;
  bytes: Buffer;
  acked: boolean;
  attempts: number;
}

/** A body sent in chunks with pauses, so a kill lands in the middle of transfers too. */
function trickle(bytes: Buffer): AsyncIterable<Uint8Array> {
  return (async function* () {
    for (let i = 0; i < bytes.length; i += CHUNK) {
      yield bytes.subarray(i, i + CHUNK);
      await sleep(6);
    }
  })();
}

class HttpError extends Error {}

for (const store of CRASH_STORES) {
  for (const db of store.dbs ?? DB_KINDS) {
    describe(`crash safety: SIGKILL during uploads (${db}, ${store.name})`, { concurrency: false }, () => {
      let dataDir: string;
      let dbUrl: string;
      let dropDb = async () => {};
      let shelf: TestShelf | null = null;
      const jobs: Job[] = [];

      const start = async () => {
        shelf = await startShelf({
          dataDir,
          dbUrl,
          env: {
            SHELF_GC_GRACE: '0',
            SHELF_GC_INTERVAL: '0',
            SHELF_LIBRARY_MULTIPART_PART_SIZE: String(PART_SIZE),
            // Interrupted Library sessions expire quickly, so collection can be seen to end them.
            SHELF_LIBRARY_UPLOAD_URL_TTL: '5',
            ...store.env(dataDir),
          },
        });
        return shelf;
      };

      const call = async (method: string, url: string, body?: Buffer | AsyncIterable<Uint8Array> | string, headers: Record<string, string> = {}, auth = `Bearer ${ADMIN_TOKEN}`) => {
        const full = url.startsWith('http') ? url : `${shelf!.url}${url}`;
        const res = await fetch(full, {
          method,
          headers: { authorization: auth, ...headers },
          body: body as RequestInit['body'],
          ...(body && typeof body === 'object' && !Buffer.isBuffer(body) ? { duplex: 'half' } : {}),
          redirect: 'follow',
        } as RequestInit);
        return res;
      };
      const json = async (method: string, url: string, body?: unknown) => {
        const res = await call(method, url, body === undefined ? undefined : JSON.stringify(body), { 'content-type': 'application/json' });
        const text = await res.text();
        if (!res.ok) throw new HttpError(`${method} ${url}: ${res.status} ${text}`);
        return text ? ((JSON.parse(text) as { data: unknown }).data as Record<string, unknown>) : {};
      };
      const ok = async (res: Response, what: string) => {
        if (!res.ok) throw new HttpError(`${what}: ${res.status} ${await res.text()}`);
        return res;
      };

      let containerIds: Record<number, string> = {};
      const libraryRef = (job: Job) => `admin/crash/job-${job.n}:latest`;
      const ociName = (job: Job) => `admin/crash/oci-${job.n}`;

      async function pushLibrary(job: Job): Promise<void> {
        const hash = sha(job.bytes).replace(':', '.');
        const image = await json('POST', '/v1/images', { container: containerIds[job.n], hash });
        const id = image.id as string;
        if (image.uploaded !== true) {
          if (job.kind === 'v1') {
            await ok(await call('POST', `/v1/imagefile/${id}`, trickle(job.bytes), { 'content-type': 'application/octet-stream' }), 'v1 upload');
          } else if (job.kind === 'v2-single') {
            const { uploadURL } = await json('POST', `/v2/imagefile/${id}`, { filesize: job.bytes.length, sha256sum: hash.slice(7) });
            await ok(await call('PUT', uploadURL as string, trickle(job.bytes)), 'v2 upload');
            await json('PUT', `/v2/imagefile/${id}/_complete`, {});
          } else {
            const started = await json('POST', `/v2/imagefile/${id}/_multipart`, { filesize: job.bytes.length });
            const uploadID = started.uploadID as string;
            const partSize = started.partSize as number;
            const completedParts = [];
            for (let p = 1; p <= (started.totalParts as number); p++) {
              const part = job.bytes.subarray((p - 1) * partSize, p * partSize);
              const { presignedURL } = await json('PUT', `/v2/imagefile/${id}/_multipart`, { uploadID, partNumber: p, partSize: part.length, sha256sum: '' });
              const res = await ok(await call('PUT', presignedURL as string, trickle(part)), `part ${p}`);
              completedParts.push({ partNumber: p, token: res.headers.get('etag') ?? '' });
            }
            await json('PUT', `/v2/imagefile/${id}/_multipart_complete`, { uploadID, completedParts });
          }
        }
        await json('POST', `/v1/tags/${containerIds[job.n]}`, { Tag: 'latest', ImageID: id });
      }

      const ociConfig = (job: Job) => Buffer.from(JSON.stringify({ job: job.n }));
      const ociManifest = (job: Job) =>
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            config: { mediaType: 'application/vnd.test.config+json', digest: sha(ociConfig(job)), size: ociConfig(job).length },
            layers: [{ mediaType: 'application/vnd.test.layer', digest: sha(job.bytes), size: job.bytes.length }],
          }),
        );

      async function pushOci(job: Job): Promise<void> {
        const name = ociName(job);
        const upload = async (bytes: Buffer, chunked: boolean) => {
          const head = await call('HEAD', `/v2/${name}/blobs/${sha(bytes)}`, undefined, {}, basic);
          if (head.status === 200) return;
          const post = await ok(await call('POST', `/v2/${name}/blobs/uploads/`, undefined, {}, basic), 'start upload');
          let location = post.headers.get('location')!;
          if (chunked) {
            for (let i = 0; i < bytes.length; i += PART_SIZE) {
              const chunk = bytes.subarray(i, i + PART_SIZE);
              const patch = await ok(
                await call('PATCH', location, trickle(chunk), { 'content-range': `${i}-${i + chunk.length - 1}`, 'content-length': String(chunk.length), 'content-type': 'application/octet-stream' }, basic),
                'chunk',
              );
              location = patch.headers.get('location') ?? location;
            }
            await ok(await call('PUT', `${location}?digest=${sha(bytes)}`, undefined, {}, basic), 'close upload');
          } else {
            await ok(await call('PUT', `${location}?digest=${sha(bytes)}`, trickle(bytes), { 'content-type': 'application/octet-stream' }, basic), 'monolithic upload');
          }
        };
        await upload(job.bytes, job.kind === 'oci-chunked');
        await upload(ociConfig(job), false);
        await ok(
          await call('PUT', `/v2/${name}/manifests/latest`, ociManifest(job), { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, basic),
          'manifest',
        );
      }

      const push = (job: Job) => (job.kind.startsWith('oci') ? pushOci(job) : pushLibrary(job));

      /** Pulls the job's image: its bytes, or null when it is not visible (404). */
      async function pull(job: Job): Promise<Buffer | null> {
        if (job.kind.startsWith('oci')) {
          const m = await call('GET', `/v2/${ociName(job)}/manifests/latest`, undefined, { accept: 'application/vnd.oci.image.manifest.v1+json' }, basic);
          if (m.status === 404) return null;
          await ok(m, 'manifest pull');
          assert.deepEqual(Buffer.from(await m.arrayBuffer()), ociManifest(job), `job ${job.n}: manifest`);
          const config = await ok(await call('GET', `/v2/${ociName(job)}/blobs/${sha(ociConfig(job))}`, undefined, {}, basic), 'config pull');
          assert.deepEqual(Buffer.from(await config.arrayBuffer()), ociConfig(job), `job ${job.n}: config`);
          const layer = await ok(await call('GET', `/v2/${ociName(job)}/blobs/${sha(job.bytes)}`, undefined, {}, basic), 'layer pull');
          return Buffer.from(await layer.arrayBuffer());
        }
        const meta = await call('GET', `/v1/images/${libraryRef(job)}?arch=amd64`);
        if (meta.status === 404) return null;
        const image = ((await (await ok(meta, 'image')).json()) as { data: { uploaded: boolean; size: number } }).data;
        assert.equal(image.uploaded, true, `job ${job.n}: a tag points at an image whose upload did not complete`);
        const file = await ok(await call('GET', `/v1/imagefile/${libraryRef(job)}?arch=amd64`), 'image file');
        return Buffer.from(await file.arrayBuffer());
      }

      /** Every acknowledged push intact; everything else invisible or whole, never half. */
      async function verify(round: string) {
        for (const job of jobs) {
          const got = await pull(job);
          if (job.acked) {
            assert.ok(got, `${round}: acknowledged job ${job.n} (${job.kind}) is gone`);
            assert.ok(got.equals(job.bytes), `${round}: acknowledged job ${job.n} (${job.kind}) differs`);
          } else if (got) {
            // Committed before the kill, answered too late: whole, or it would not be visible.
            assert.ok(got.equals(job.bytes), `${round}: unacknowledged job ${job.n} (${job.kind}) is visible half`);
          }
          if (job.kind.startsWith('oci')) {
            const blob = await call('GET', `/v2/${ociName(job)}/blobs/${sha(job.bytes)}`, undefined, {}, basic);
            if (blob.status === 200) assert.ok(Buffer.from(await blob.arrayBuffer()).equals(job.bytes), `${round}: job ${job.n}: a half blob is readable`);
            else assert.equal(blob.status, 404);
          }
        }
      }

      const admin = (args: string[]) =>
        run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', ...args, '--url', shelf!.url, '--token', ADMIN_TOKEN]);

      before(async () => {
        await store.setup?.();
        dataDir = await mkdtemp(path.join(tmpdir(), 'shelf-crash-'));
        dbUrl = `sqlite:${path.join(dataDir, 'shelf.db')}`;
        if (db === 'postgres') {
          const fresh = await freshPostgres();
          dbUrl = fresh.url;
          dropDb = fresh.drop;
        }
        const work = await mkdtemp(path.join(tmpdir(), 'shelf-crash-sif-'));
        for (let n = 0; n < JOBS; n++) {
          const kind = KINDS[n % KINDS.length]!;
          const size = randomInt(200_000, 1_200_000);
          let bytes: Buffer;
          if (kind.startsWith('oci')) {
            bytes = randomBytes(size);
          } else {
            const file = path.join(work, `job-${n}.sif`);
            await makeLargeSif(file, work, size);
            bytes = await readFile(file);
          }
          jobs.push({ n, kind, bytes, acked: false, attempts: 0 });
        }
        await rm(work, { recursive: true, force: true });
        await start();
        const entity = await json('GET', '/v1/entities/admin');
        const collection = await json('POST', '/v1/collections', { entity: entity.id, name: 'crash' });
        containerIds = {};
        for (const job of jobs) {
          if (job.kind.startsWith('oci')) continue;
          containerIds[job.n] = (await json('POST', '/v1/containers', { collection: collection.id, name: `job-${job.n}` })).id as string;
        }
      });
      after(async () => {
        await shelf?.kill('SIGKILL');
        await dropDb();
        await rm(dataDir, { recursive: true, force: true });
        await store.teardown?.();
      });

      test('pushes killed at random points: acknowledged ones intact after restart, none half visible', async () => {
        let interrupted = 0;
        // On a loaded machine the first rounds may all kill before any push completes: go on
        // (with later kills) until one was acknowledged between kills, within a bound.
        const acked = () => jobs.some((j) => j.acked);
        for (let round = 0; round < KILL_ROUNDS || (!acked() && round < 3 * KILL_ROUNDS); round++) {
          // Workers push one pending job after another until the kill, so it lands inside pushes.
          const taken = new Set<Job>();
          let killed = false;
          const worker = async (w: number) => {
            await sleep(w * 25);
            for (;;) {
              const job = jobs.find((j) => !j.acked && !taken.has(j));
              if (!job || killed) return;
              taken.add(job);
              job.attempts++;
              try {
                await push(job);
                job.acked = true;
              } catch (err) {
                // Only the kill may break a push: a refusal by a live server is a bug.
                if (!killed && err instanceof HttpError) throw err;
                interrupted++;
                return;
              }
            }
          };
          const running = Array.from({ length: WORKERS }, (_, w) => worker(w));
          const killAt = randomInt(100, 1200) * (round < KILL_ROUNDS ? 1 : 1 + round - KILL_ROUNDS);
          await sleep(killAt);
          killed = true;
          await shelf!.kill('SIGKILL');
          await Promise.all(running);
          await start();
          await verify(`round ${round} (killed after ${killAt} ms)`);
        }
        const ackedUnderKills = jobs.filter((j) => j.acked).length;
        // The rest, without kills: every job ends acknowledged, re-pushes over crash leftovers included.
        for (const job of jobs.filter((j) => !j.acked)) {
          await push(job);
          job.acked = true;
        }
        await verify('after the last push');
        const attempts = jobs.reduce((n, j) => n + j.attempts, 0);
        assert.ok(attempts >= 20, `only ${attempts} uploads ran during kills`);
        assert.ok(interrupted > 0, 'no kill interrupted a push');
        assert.ok(ackedUnderKills > 0, 'no push was acknowledged between kills');
        console.log(`# ${db}: ${attempts} uploads during ${KILL_ROUNDS}+ kills, ${ackedUnderKills} acknowledged, ${interrupted} interrupted`);
      });

      test('restart, gc removes what the crashes left; doctor is clean afterwards', async () => {
        await shelf!.kill('SIGKILL');
        await start();
        // Give the interrupted Library sessions (5 s) time to expire, and stray upload data the
        // 10 s after its last write before it counts as stray.
        await sleep(10_500);
        const meta = await openMetaDb(dbUrl);
        let strays: string[];
        let unowned: string[];
        let orphans: string[];
        try {
          const library = new Set((await meta.db.selectFrom('uploads').select('id').execute()).map((r) => r.id));
          const oci = new Set((await meta.db.selectFrom('oci_uploads').select('id').execute()).map((r) => r.id));
          const temps = await store.temps(dataDir);
          // Every Library session has expired by now; OCI sessions live for a day and keep their data.
          strays = temps.filter((t) => !oci.has(t));
          unowned = temps.filter((t) => !oci.has(t) && !library.has(t));
          const rows = new Set((await meta.db.selectFrom('blobs').select('digest').execute()).map((r) => r.digest));
          orphans = (await store.blobs(dataDir)).filter((d) => !rows.has(d));
        } finally {
          await meta.close();
        }

        const before = await admin(['doctor']);
        if (orphans.length || unowned.length) assert.equal(before.code, 1, `doctor missed crash leftovers:\n${before.stdout}`);
        for (const o of orphans) assert.match(before.stdout, new RegExp(`^orphan\\t${o}\\t`, 'm'));
        for (const t of unowned) assert.match(before.stdout, new RegExp(`^stale-upload\\t${t}\\t`, 'm'));
        const dry = await admin(['gc', '--dry-run']);
        assert.equal(dry.code, 0, dry.stderr);
        assert.match(dry.stdout, /^would free \d+ bytes/m);
        const gc = await admin(['gc']);
        assert.equal(gc.code, 0, gc.stderr);
        for (const o of orphans) assert.match(gc.stdout, new RegExp(`removed orphaned bytes ${o}`));
        for (const s of strays) assert.match(gc.stdout, new RegExp(`removed (expired upload|stray upload data) ${s} `));
        const freed = Number(/^freed (\d+) bytes/m.exec(gc.stdout)?.[1]);
        assert.ok(Number.isInteger(freed));
        console.log(`# ${db}: gc removed ${orphans.length} orphaned blobs and ${strays.length} upload leftovers, ${freed} bytes`);

        const after = await admin(['doctor', '--scrub']);
        assert.equal(after.code, 0, after.stdout + after.stderr);
        assert.match(after.stdout, /^ok: \d+ blobs consistent, \d+ bytes re-hashed/m);
        await verify('after gc');
        // Nothing acknowledged was collected, and a second collection finds nothing to do.
        const again = await admin(['gc']);
        assert.match(again.stdout, /^freed 0 bytes/m);
      });

      test('doctor reports a removed blob and (with --scrub) a corrupted one, non-zero exit', async () => {
        const [gone, damaged] = jobs.filter((j) => !j.kind.startsWith('oci'));
        await store.remove(dataDir, sha(gone!.bytes));
        await store.corrupt(dataDir, sha(damaged!.bytes));
        const quick = await admin(['doctor']);
        assert.equal(quick.code, 1);
        assert.match(quick.stdout, new RegExp(`^missing\\t${sha(gone!.bytes)}\\t`, 'm'));
        assert.doesNotMatch(quick.stdout, new RegExp(sha(damaged!.bytes)));
        assert.match(quick.stderr, /doctor found 1 problem/);
        const scrub = await admin(['doctor', '--scrub']);
        assert.equal(scrub.code, 1);
        assert.match(scrub.stdout, new RegExp(`^digest-mismatch\\t${sha(damaged!.bytes)}\\t`, 'm'));
        assert.match(scrub.stdout, /^2 problem\(s\)/m);
        // Only administrators may collect or check.
        assert.equal((await call('POST', '/api/admin/gc', '{}', { 'content-type': 'application/json' }, '')).status, 401);
        assert.equal((await call('GET', '/api/admin/doctor', undefined, {}, '')).status, 401);
      });

      test('with the server down, doctor and gc work on the stores directly (--data/--db)', async () => {
        await shelf!.kill('SIGKILL');
        const direct = (args: string[]) =>
          run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', ...args, '--data', dataDir, '--db', dbUrl], { env: { SHELF_GC_GRACE: '0', ...store.env(dataDir) } });
        const doctor = await direct(['doctor']);
        assert.equal(doctor.code, 1, doctor.stderr);
        assert.match(doctor.stdout, /^missing\tsha256:/m);
        const dry = await direct(['gc', '--dry-run']);
        assert.equal(dry.code, 0, dry.stderr);
        assert.match(dry.stdout, /^would free 0 bytes/m);
        const nowhere = await run(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', 'gc'], { env: { SHELF_URL: '', SHELF_TOKEN: '' } });
        assert.equal(nowhere.code, 2);
        assert.match(nowhere.stderr, /^shelf: give --url URL and --token ADMIN_TOKEN .* or --data\/--db/);
      });
    });
  }
}
