/** True when a write failed on a UNIQUE or PRIMARY KEY constraint (SQLite or PostgreSQL). */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string } | null;
  return !!e && (e.code === '23505' || e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY');
}

/**
 * True when a write failed for want of space: the file system (ENOSPC, EDQUOT), SQLite
 * (SQLITE_FULL) or PostgreSQL (53100 disk_full).
 */
export function isOutOfSpace(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL' || code === '53100';
}

/** What a client is told when the server's storage is full (507 Insufficient Storage). */
export const OUT_OF_SPACE = 'insufficient storage: the server has no room for this data now; try again later';
