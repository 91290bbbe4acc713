import { sql, type Kysely } from 'kysely';

/**
 * The search index: one row in `search_docs` per entity, collection and container, holding its
 * path (`entity[/collection[/container]]`, the catalog's order) and the text a search matches
 * (names, descriptions, image digests and descriptions, tag names). Triggers keep it in step
 * with every write path, so no domain code has to remember it. SQLite indexes `doc` with an
 * FTS5 trigram table (external content, rowid = `seq`, an INTEGER PRIMARY KEY so VACUUM keeps
 * it); PostgreSQL with a pg_trgm GIN index. Both answer substring queries of 3+ characters.
 */

type Dialect = 'sqlite' | 'postgres';

const agg = (d: Dialect, expr: string) => (d === 'sqlite' ? `group_concat(${expr}, ' ')` : `string_agg(${expr}, ' ')`);

/** The upsert of the container docs matching `where` (over aliases k, c, e). */
export function containerDocUpsert(d: Dialect, where: string): string {
  return `INSERT INTO search_docs (ref_id, kind, entity_id, collection_id, container_id, path, doc)
    SELECT k.id, 'container', e.id, c.id, k.id, e.name || '/' || c.name || '/' || k.name,
      e.name || ' ' || c.name || ' ' || k.name || ' ' || k.description || ' ' || k.full_description || ' ' ||
      coalesce((SELECT ${agg(d, "i.digest || ' ' || i.description")} FROM images i WHERE i.container_id = k.id AND i.uploaded = 1), '') || ' ' ||
      coalesce((SELECT ${agg(d, 't.name')} FROM tags t WHERE t.container_id = k.id), '')
    FROM containers k JOIN collections c ON c.id = k.collection_id JOIN entities e ON e.id = c.entity_id
    WHERE ${where}
    ON CONFLICT (ref_id) DO UPDATE SET path = excluded.path, doc = excluded.doc`;
}

export function collectionDocUpsert(where: string): string {
  return `INSERT INTO search_docs (ref_id, kind, entity_id, collection_id, container_id, path, doc)
    SELECT c.id, 'collection', e.id, c.id, NULL, e.name || '/' || c.name, c.name || ' ' || c.description
    FROM collections c JOIN entities e ON e.id = c.entity_id
    WHERE ${where}
    ON CONFLICT (ref_id) DO UPDATE SET path = excluded.path, doc = excluded.doc`;
}

export function entityDocUpsert(where: string): string {
  return `INSERT INTO search_docs (ref_id, kind, entity_id, collection_id, container_id, path, doc)
    SELECT e.id, 'entity', e.id, NULL, NULL, e.name, e.name || ' ' || e.description
    FROM entities e
    WHERE ${where}
    ON CONFLICT (ref_id) DO UPDATE SET path = excluded.path, doc = excluded.doc`;
}

async function run(db: Kysely<unknown>, statements: string[]): Promise<void> {
  for (const s of statements) await sql.raw(s).execute(db);
}

export async function createSearchIndex(db: Kysely<unknown>, d: Dialect): Promise<void> {
  const path = d === 'postgres' ? 'text COLLATE "C" NOT NULL' : 'text NOT NULL';
  const seq = d === 'postgres' ? 'bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY' : 'INTEGER PRIMARY KEY';
  await run(db, [
    `CREATE TABLE search_docs (
      seq ${seq},
      ref_id text NOT NULL UNIQUE,
      kind text NOT NULL,
      entity_id text NOT NULL REFERENCES entities(id) ON DELETE CASCADE,
      collection_id text REFERENCES collections(id) ON DELETE CASCADE,
      container_id text REFERENCES containers(id) ON DELETE CASCADE,
      path ${path},
      doc text NOT NULL)`,
    'CREATE INDEX search_docs_path ON search_docs (kind, path)',
    'CREATE INDEX search_docs_container ON search_docs (container_id)',
    'CREATE INDEX search_docs_collection ON search_docs (collection_id)',
    // Exact-name ranking, browse by recency, and the collection page's containers.
    'CREATE INDEX containers_name ON containers (name)',
    'CREATE INDEX containers_updated ON containers (updated_at, id)',
  ]);
  if (d === 'sqlite') await sqliteTriggers(db);
  else await postgresTriggers(db);
  await run(db, [entityDocUpsert('1 = 1'), collectionDocUpsert('1 = 1'), containerDocUpsert(d, '1 = 1')]);
}

export const KINDS = ['entity', 'collection', 'container'] as const;
/** SQLite: one FTS5 table per kind, so a search for containers never walks entity matches. */
export const ftsTable = (kind: (typeof KINDS)[number]) => `search_fts_${kind}`;

async function sqliteTriggers(db: Kysely<unknown>): Promise<void> {
  for (const kind of KINDS) {
    const t = ftsTable(kind);
    await run(db, [
      `CREATE VIRTUAL TABLE ${t} USING fts5(doc, content='search_docs', content_rowid='seq', tokenize='trigram')`,
      `CREATE TRIGGER ${t}_ai AFTER INSERT ON search_docs WHEN new.kind = '${kind}' BEGIN
         INSERT INTO ${t} (rowid, doc) VALUES (new.seq, new.doc); END`,
      `CREATE TRIGGER ${t}_ad AFTER DELETE ON search_docs WHEN old.kind = '${kind}' BEGIN
         INSERT INTO ${t} (${t}, rowid, doc) VALUES ('delete', old.seq, old.doc); END`,
      `CREATE TRIGGER ${t}_au AFTER UPDATE OF doc ON search_docs WHEN new.kind = '${kind}' BEGIN
         INSERT INTO ${t} (${t}, rowid, doc) VALUES ('delete', old.seq, old.doc);
         INSERT INTO ${t} (rowid, doc) VALUES (new.seq, new.doc); END`,
    ]);
  }
  await run(db, domainTriggers('sqlite'));
}

async function postgresTriggers(db: Kysely<unknown>): Promise<void> {
  await run(db, [
    'CREATE EXTENSION IF NOT EXISTS pg_trgm',
    ...trigramIndexes(),
  ]);
  await run(db, domainTriggers('postgres'));
}

/** PostgreSQL: the trigram indexes of the docs, one per kind. */
const trigramIndexes = () => KINDS.map((kind) => `CREATE INDEX search_docs_${kind}_doc ON search_docs USING gin (doc gin_trgm_ops) WHERE kind = '${kind}'`);

/** The triggers on the namespace tables that keep `search_docs` in step, as statements. */
function domainTriggers(d: Dialect): string[] {
  if (d === 'sqlite') {
    return [
    `CREATE TRIGGER entities_doc_ai AFTER INSERT ON entities BEGIN ${entityDocUpsert('e.id = new.id')}; END`,
    `CREATE TRIGGER entities_doc_au AFTER UPDATE OF name, description ON entities BEGIN
       ${entityDocUpsert('e.id = new.id')};
       ${collectionDocUpsert('e.id = new.id AND new.name <> old.name')};
       ${containerDocUpsert(d, 'e.id = new.id AND new.name <> old.name')}; END`,
    `CREATE TRIGGER collections_doc_ai AFTER INSERT ON collections BEGIN ${collectionDocUpsert('c.id = new.id')}; END`,
    `CREATE TRIGGER collections_doc_au AFTER UPDATE OF name, description ON collections BEGIN
       ${collectionDocUpsert('c.id = new.id')};
       ${containerDocUpsert(d, 'c.id = new.id AND new.name <> old.name')}; END`,
    `CREATE TRIGGER containers_doc_ai AFTER INSERT ON containers BEGIN ${containerDocUpsert(d, 'k.id = new.id')}; END`,
    `CREATE TRIGGER containers_doc_au AFTER UPDATE OF name, description, full_description, collection_id ON containers BEGIN
       ${containerDocUpsert(d, 'k.id = new.id')}; END`,
    `CREATE TRIGGER images_doc_ai AFTER INSERT ON images WHEN new.uploaded = 1 BEGIN ${containerDocUpsert(d, 'k.id = new.container_id')}; END`,
    `CREATE TRIGGER images_doc_au AFTER UPDATE OF uploaded, description, digest ON images BEGIN ${containerDocUpsert(d, 'k.id = new.container_id')}; END`,
    `CREATE TRIGGER images_doc_ad AFTER DELETE ON images BEGIN ${containerDocUpsert(d, 'k.id = old.container_id')}; END`,
    `CREATE TRIGGER tags_doc_ai AFTER INSERT ON tags BEGIN ${containerDocUpsert(d, 'k.id = new.container_id')}; END`,
    `CREATE TRIGGER tags_doc_au AFTER UPDATE OF name ON tags BEGIN ${containerDocUpsert(d, 'k.id = new.container_id')}; END`,
    `CREATE TRIGGER tags_doc_ad AFTER DELETE ON tags BEGIN ${containerDocUpsert(d, 'k.id = old.container_id')}; END`,
    ];
  }
  const fn = (name: string, body: string) => `CREATE OR REPLACE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN ${body} RETURN NULL; END $fn$`;
  const trg = (name: string, when: string, table: string, func: string) =>
    `CREATE TRIGGER ${name} AFTER ${when} ON ${table} FOR EACH ROW EXECUTE FUNCTION ${func}()`;
  return [
    fn('shelf_entity_doc', `${entityDocUpsert('e.id = NEW.id')};
      IF TG_OP = 'UPDATE' AND NEW.name <> OLD.name THEN
        ${collectionDocUpsert('e.id = NEW.id')}; ${containerDocUpsert(d, 'e.id = NEW.id')};
      END IF;`),
    fn('shelf_collection_doc', `${collectionDocUpsert('c.id = NEW.id')};
      IF TG_OP = 'UPDATE' AND NEW.name <> OLD.name THEN ${containerDocUpsert(d, 'c.id = NEW.id')}; END IF;`),
    fn('shelf_container_doc', `${containerDocUpsert(d, 'k.id = NEW.id')};`),
    fn('shelf_child_doc', `IF TG_OP = 'DELETE' THEN ${containerDocUpsert(d, 'k.id = OLD.container_id')};
      ELSE ${containerDocUpsert(d, 'k.id = NEW.container_id')}; END IF;`),
    trg('entities_doc', 'INSERT OR UPDATE OF name, description', 'entities', 'shelf_entity_doc'),
    trg('collections_doc', 'INSERT OR UPDATE OF name, description', 'collections', 'shelf_collection_doc'),
    trg('containers_doc', 'INSERT OR UPDATE OF name, description, full_description, collection_id', 'containers', 'shelf_container_doc'),
    `CREATE TRIGGER images_doc_ai AFTER INSERT ON images FOR EACH ROW WHEN (NEW.uploaded = 1) EXECUTE FUNCTION shelf_child_doc()`,
    trg('images_doc', 'UPDATE OF uploaded, description, digest OR DELETE', 'images', 'shelf_child_doc'),
    trg('tags_doc', 'INSERT OR UPDATE OF name OR DELETE', 'tags', 'shelf_child_doc'),
  ];
}

const DOMAIN_TRIGGERS: Record<Dialect, Array<[string, string]>> = {
  sqlite: [
    ['entities_doc_ai', 'entities'], ['entities_doc_au', 'entities'], ['collections_doc_ai', 'collections'], ['collections_doc_au', 'collections'],
    ['containers_doc_ai', 'containers'], ['containers_doc_au', 'containers'], ['images_doc_ai', 'images'], ['images_doc_au', 'images'],
    ['images_doc_ad', 'images'], ['tags_doc_ai', 'tags'], ['tags_doc_au', 'tags'], ['tags_doc_ad', 'tags'],
  ],
  postgres: [
    ['entities_doc', 'entities'], ['collections_doc', 'collections'], ['containers_doc', 'containers'], ['images_doc_ai', 'images'],
    ['images_doc', 'images'], ['tags_doc', 'tags'],
  ],
};

/**
 * Bulk loads (imports, the scale benchmark): runs `load` with the per-row index triggers off, then
 * rebuilds every doc in three set-based statements (on PostgreSQL with the trigram indexes
 * dropped meanwhile and built afresh) and turns the triggers back on. Not for a
 * database that serves requests meanwhile.
 */
export async function withSearchIndexRebuilt(db: Kysely<unknown>, d: Dialect, load: () => Promise<void>): Promise<void> {
  const drop = DOMAIN_TRIGGERS[d].map(([name, table]) => (d === 'sqlite' ? `DROP TRIGGER IF EXISTS ${name}` : `DROP TRIGGER IF EXISTS ${name} ON ${table}`));
  await run(db, drop);
  try {
    await load();
  } finally {
    // PostgreSQL builds a GIN index from scratch several times faster than it grows one a row at a time.
    if (d === 'postgres') await run(db, KINDS.map((kind) => `DROP INDEX IF EXISTS search_docs_${kind}_doc`));
    await run(db, [entityDocUpsert('1 = 1'), collectionDocUpsert('1 = 1'), containerDocUpsert(d, '1 = 1')]);
    if (d === 'postgres') await run(db, trigramIndexes());
    await run(db, domainTriggers(d));
    // Fresh statistics: without them PostgreSQL plans the first listings over a just-loaded table
    // as if it were empty (a catalog page ran for minutes before autovacuum's analyze).
    await run(db, ['ANALYZE']);
  }
}
