/** A page of a keyset-paged list: `next` is the opaque cursor of the following page, or null. */
export interface Page<T> {
  items: T[];
  next: string | null;
}

/** Cursors are opaque to clients: base64url of the JSON of the last row's sort key. */
export const encodeCursor = (key: unknown): string => Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');

export class BadCursor extends Error {}

export function decodeCursor<T>(cursor: string | null | undefined, check: (v: unknown) => v is T): T | null {
  if (!cursor) return null;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new BadCursor('cursor is not one this server gave out');
  }
  if (!check(value)) throw new BadCursor('cursor is not one this server gave out');
  return value;
}

/** `limit` rows were asked for and `limit + 1` fetched: the page, and whether more follow. */
export function pageOf<R, T>(rows: R[], limit: number, map: (r: R) => T, key: (r: R) => unknown): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  return { items: kept.map(map), next: more && kept.length ? encodeCursor(key(kept[kept.length - 1]!)) : null };
}

export const isString = (v: unknown): v is string => typeof v === 'string';
export const isPair = (v: unknown): v is [string, string] =>
  Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string';
