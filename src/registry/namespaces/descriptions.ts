import { RegistryError } from '../errors.js';

/** What Library clients put into a container they create (Apptainer's "No description"): no description at all. */
const PLACEHOLDERS = new Set(['', 'No description']);

export const MAX_DESCRIPTION = 4096;

/** A container's own description, or, while it has none, that of its newest image (`push -D`). */
export function effectiveDescription(own: string, newestImage: string | null | undefined): string {
  if (!PLACEHOLDERS.has(own.trim())) return own;
  return newestImage && !PLACEHOLDERS.has(newestImage.trim()) ? newestImage : '';
}

/** Refuses a description that is too long or holds control characters (other than line breaks and tabs). */
export function checkDescription(description: string): void {
  if (description.length > MAX_DESCRIPTION) throw new RegistryError('invalid', `a description has at most ${MAX_DESCRIPTION} characters`);
  const control = [...description].some((ch) => {
    const c = ch.charCodeAt(0);
    return (c < 0x20 && ch !== '\n' && ch !== '\r' && ch !== '\t') || c === 0x7f;
  });
  if (control) throw new RegistryError('invalid', 'a description must not hold control characters');
}
