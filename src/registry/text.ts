import { invalid } from './errors.js';

/** C0 controls and DEL: never part of a name, a token or a one-line text. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
/** The same, but tab and line breaks, which multi-line text (descriptions) may hold. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_IN_TEXT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

export const hasControl = (value: string, multiline = false): boolean => (multiline ? CONTROL_IN_TEXT : CONTROL).test(value);

/** Refuses text a client sent with control bytes in it (NUL among them, which PostgreSQL cannot store). */
export function checkText(what: string, value: string, multiline = false): string {
  if (hasControl(value, multiline)) throw invalid(`${what} must not contain control characters`);
  return value;
}

/**
 * Text read from content (a SIF's definition file and labels, manifest annotations) is kept as
 * it is, less its NUL characters: both databases then store the same thing.
 */
export function withoutNul<T>(value: T): T {
  if (typeof value === 'string') return value.replaceAll('\u0000', '') as T;
  if (Array.isArray(value)) return value.map((v: unknown) => withoutNul(v)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [withoutNul(k), withoutNul(v)])) as T;
  }
  return value;
}
