import type { Locks } from '../../meta/locks.js';

/**
 * Serialises tag moves of one container across every node: a Library tag change and the OCI
 * tags the bridge derives from it happen as one step, so two concurrent pushes of one tag
 * cannot leave the two protocols pointing at different images. The metadata store's locks
 * decide how (a PostgreSQL advisory lock, or the process's own queue with SQLite).
 */
export class TagLocks {
  constructor(private readonly locks: Locks) {}

  run<T>(containerId: string, work: () => Promise<T>): Promise<T> {
    return this.locks.run(`tags:${containerId}`, work);
  }
}
