import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { RateLimitsRepo } from '../meta/repos/rate-limits.js';

/**
 * A @fastify/rate-limit store over the metadata store's counters: with PostgreSQL every node of
 * a site counts against one limit per address, instead of each node keeping its own.
 */
export function sharedRateLimitStore(counters: RateLimitsRepo): FastifyRateLimitStoreCtor {
  class SharedStore implements FastifyRateLimitStore {
    private readonly prefix: string;

    /** The plugin constructs the store with its options; `child` with the route's key prefix. */
    constructor(prefix?: unknown) {
      this.prefix = typeof prefix === 'string' ? prefix : '';
    }

    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number): void {
      counters.hit(`${this.prefix}${key}`, timeWindow).then(
        ({ hits, ttl }) => callback(null, { current: hits, ttl }),
        // A counter that cannot be written (a full disk) must not turn reads into errors: count
        // the request as the window's first and let it through.
        () => callback(null, { current: 1, ttl: timeWindow }),
      );
    }

    /** Each limited route counts on its own (the plugin passes the route as `routeInfo`). */
    child(params: object): FastifyRateLimitStore {
      const route = (params as { routeInfo?: { method?: string | string[]; url?: string } }).routeInfo ?? {};
      return new SharedStore(`${String(route.method ?? '')} ${route.url ?? ''}|`);
    }
  }
  return SharedStore as unknown as FastifyRateLimitStoreCtor;
}
