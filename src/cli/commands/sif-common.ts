import { FileSource, SifError } from '../../sif/index.js';
import { CliError } from '../errors.js';

/** Shared by `shelf inspect`, `sign` and `verify`. */
export const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/** Runs a SIF command; SIF errors become one line and exit 1. */
export const sifAction =
  <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
  async (...args: A): Promise<void> => {
    try {
      await fn(...args);
    } catch (err) {
      if (err instanceof SifError) throw new CliError(err.message, 1);
      throw err;
    }
  };

export async function withFile<T>(path: string, fn: (source: FileSource) => Promise<T>): Promise<T> {
  const source = await FileSource.open(path);
  try {
    return await fn(source);
  } finally {
    await source.close();
  }
}

/** The ID, GROUP and LINK columns as `siftool list` and `apptainer verify` print them. */
export const linkText = (d: { linkedId: number; linkIsGroup: boolean }): string =>
  d.linkedId === 0 ? 'NONE' : `${d.linkedId}${d.linkIsGroup ? ' (G)' : ''}`;
export const groupText = (g: number): string => (g === 0 ? 'NONE' : String(g));
export const objectRow = (d: { id: number; groupId: number; linkedId: number; linkIsGroup: boolean }): string =>
  `${String(d.id).padEnd(4)}|${groupText(d.groupId).padEnd(8)}|${linkText(d).padEnd(8)}|`;
