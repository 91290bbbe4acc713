/** A file name a download may be saved as (Content-Disposition): plain characters ending in .sif; anything else is ignored. */
export function downloadName(text: string | undefined): string | null {
  return text && /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.sif$/.test(text) ? text : null;
}
