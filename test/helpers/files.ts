import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** Number of regular files below a folder (0 if it does not exist), optionally only those of at least `minSize` bytes. */
export async function countFiles(dir: string, minSize = 0): Promise<number> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let n = 0;
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) n += await countFiles(full, minSize);
    else if (minSize === 0 || (await stat(full)).size >= minSize) n += 1;
  }
  return n;
}
