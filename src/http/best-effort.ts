import type { FastifyRequest } from 'fastify';

/**
 * For bookkeeping writes a read makes (download counters, link touches): a database that cannot
 * write (a full disk: SQLITE_FULL, PostgreSQL's disk_full) must not fail the read. Logged, dropped.
 */
export const bestEffort =
  (req: FastifyRequest, what: string) =>
  (err: unknown): void => {
    req.log.warn({ err }, what);
  };
