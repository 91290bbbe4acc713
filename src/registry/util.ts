import { randomBytes, randomUUID } from 'node:crypto';

export const newId = (): string => randomUUID();
export const nowIso = (): string => new Date().toISOString();
/** An unguessable URL-safe secret (capability URLs, API tokens). */
export const newSecret = (bytes = 32): string => randomBytes(bytes).toString('base64url');
export const bool = (v: number | null | undefined): boolean => v === 1;

/** Jobs of one kind, one at a time in this process: a call while one runs waits for it and runs afresh. */
export class OneAtATime<T> {
  private running: Promise<T> | null = null;

  /** Resolves when no job runs. */
  async idle(): Promise<void> {
    while (this.running) await this.running.catch(() => undefined);
  }

  async run(work: () => Promise<T>): Promise<T> {
    await this.idle();
    const job = work();
    this.running = job;
    try {
      return await job;
    } finally {
      this.running = null;
    }
  }
}
