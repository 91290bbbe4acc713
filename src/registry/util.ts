import { randomBytes, randomUUID } from 'node:crypto';

export const newId = (): string => randomUUID();
export const nowIso = (): string => new Date().toISOString();
/** An unguessable URL-safe secret (capability URLs, API tokens). */
export const newSecret = (bytes = 32): string => randomBytes(bytes).toString('base64url');
export const bool = (v: number | null | undefined): boolean => v === 1;
