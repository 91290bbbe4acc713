import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../../src/meta/db.js';
import type { Database } from '../../src/meta/schema.js';
import { withSearchIndexRebuilt } from '../../src/meta/search-index.js';

export interface SeedShape {
  /** Containers (each with one uploaded image and two tags). */
  containers: number;
  containersPerCollection?: number;
  collectionsPerEntity?: number;
  /** Every n-th container, collection and entity is private (0: none). */
  privateEvery?: number;
  /** Every n-th entity belongs to a group (0: none). */
  groupEvery?: number;
  /** Rows per INSERT statement. */
  batch?: number;
  /** Also give every container OCI tags `latest` and `v1` (for tag-list reads). */
  ociTags?: boolean;
}

export interface Seeded {
  entities: number;
  collections: number;
  /** The user owning entity `e0`, and a member (reader) of group `g0`. */
  ownerId: string;
  memberId: string;
}

const ARCHES = ['amd64', 'arm64', 'ppc64le'];
const WORDS = ['ubuntu', 'alpine', 'rocky', 'debian', 'cuda', 'openmpi', 'gromacs', 'lammps', 'python', 'rstudio'];

export const seededName = (i: number) => `${WORDS[i % WORDS.length]}-${i.toString(36)}`;
export const seededDigest = (i: number) => `sha256:${createHash('sha256').update(`image ${i}`).digest('hex')}`;

/**
 * A library straight into the schema with multi-row INSERTs inside transactions: entities
 * `eN` (user- or group-owned), collections `cN`, containers named `WORD-base36`, one image each
 * (arch cycling amd64/arm64/ppc64le, every other one signed) tagged `latest` and `v1`.
 */
export async function seedLibrary(db: Kysely<Database>, dialect: Dialect, shape: SeedShape): Promise<Seeded> {
  // Bulk data: no per-commit fsync, and the search index built once at the end.
  if (dialect === 'sqlite') await sql`PRAGMA synchronous = OFF`.execute(db);
  let seeded: Seeded | undefined;
  await withSearchIndexRebuilt(db as Kysely<unknown>, dialect, async () => {
    seeded = await insertLibrary(db, shape);
  });
  if (dialect === 'sqlite') await sql`PRAGMA synchronous = FULL`.execute(db);
  return seeded!;
}

async function insertLibrary(db: Kysely<Database>, shape: SeedShape): Promise<Seeded> {
  const perCollection = shape.containersPerCollection ?? 100;
  const perEntity = shape.collectionsPerEntity ?? 10;
  const privateEvery = shape.privateEvery ?? 10;
  const groupEvery = shape.groupEvery ?? 7;
  const batch = shape.batch ?? 1000;
  const collections = Math.ceil(shape.containers / perCollection);
  const entities = Math.ceil(collections / perEntity);
  const at = (i: number) => new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString();
  const priv = (i: number) => (privateEvery && i % privateEvery === privateEvery - 1 ? 1 : 0);

  const insertAll = async <T>(table: keyof Database, count: number, row: (i: number) => T, rowsPerStatement = batch) => {
    for (let start = 0; start < count; start += rowsPerStatement * 20) {
      await db.transaction().execute(async (trx) => {
        for (let s = start; s < Math.min(count, start + rowsPerStatement * 20); s += rowsPerStatement) {
          const rows = [];
          for (let i = s; i < Math.min(count, s + rowsPerStatement); i++) rows.push(row(i));
          // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one generic bulk insert for every table
          await trx.insertInto(table).values(rows as any).execute();
        }
      });
    }
  };

  const groups = groupEvery ? Math.ceil(entities / groupEvery) : 0;
  await insertAll('users', entities + 1, (i) => ({
    id: `u${i}`, username: `user${i}`, is_admin: 0, disabled: 0, created_at: at(0), password_hash: null, auth_source: 'local',
  }));
  await insertAll('groups', groups, (i) => ({ id: `g${i}`, name: `group${i}`, created_at: at(0) }));
  await insertAll('memberships', groups, (i) => ({ group_id: `g${i}`, user_id: `u${entities}`, role: 'reader' }));
  const groupOf = (e: number) => (groupEvery && e % groupEvery === groupEvery - 1 ? `g${Math.floor(e / groupEvery)}` : null);
  await insertAll('entities', entities, (i) => ({
    id: `e${i}`, name: `e${i}`, description: `entity ${i}`, owner_user_id: groupOf(i) ? null : `u${i}`, owner_group_id: groupOf(i),
    private: priv(i + 3), default_private: 0, quota: 0, created_at: at(i), created_by: 'seed', updated_at: at(i),
  }));
  await insertAll('collections', collections, (i) => ({
    id: `c${i}`, entity_id: `e${Math.floor(i / perEntity)}`, name: `c${i}`, description: `collection ${i}`, private: priv(i + 5),
    created_at: at(i), created_by: 'seed', updated_at: at(i),
  }));
  await insertAll('containers', shape.containers, (i) => ({
    id: `k${i}`, collection_id: `c${Math.floor(i / perCollection)}`, name: seededName(i), description: `${WORDS[(i >> 3) % WORDS.length]} image number ${i}`,
    full_description: '', private: priv(i), read_only: 0, download_count: 0, created_at: at(i), created_by: 'seed', updated_at: at(i),
  }));
  await insertAll('images', shape.containers, (i) => ({
    id: `i${i}`, container_id: `k${i}`, digest: seededDigest(i), description: `build ${i}`, size: 1_000_000 + i, uploaded: 1,
    arch: ARCHES[i % ARCHES.length]!, signed: i % 2, fingerprints: '[]', encrypted: 0, deffile: null, labels: '{}', sif_info: '{}',
    download_count: 0, created_at: at(i), created_by: 'seed', updated_at: at(i),
  }));
  await insertAll('tags', shape.containers * 2, (j) => {
    const i = j >> 1;
    return { container_id: `k${i}`, arch: ARCHES[i % ARCHES.length]!, name: j % 2 ? 'v1' : 'latest', image_id: `i${i}`, updated_at: at(i) };
  });
  if (shape.ociTags) {
    await insertAll('oci_tags', shape.containers * 2, (j) => {
      const i = j >> 1;
      return { container_id: `k${i}`, name: j % 2 ? 'v1' : 'latest', manifest_digest: seededDigest(i), updated_at: at(i) };
    });
  }
  return { entities, collections, ownerId: 'u0', memberId: `u${entities}` };
}

/** The path of seeded container `i`, and whether anonymous callers may read it (with the default shape). */
export function seededContainer(i: number, perCollection = 100, perEntity = 10, privateEvery = 10) {
  const priv = (n: number) => n % privateEvery === privateEvery - 1;
  const c = Math.floor(i / perCollection);
  const e = Math.floor(c / perEntity);
  return { path: `e${e}/c${c}/${seededName(i)}`, id: `k${i}`, public: !priv(i) && !priv(c + 5) && !priv(e + 3) };
}
