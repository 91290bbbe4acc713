import { open, rename, rm, stat } from 'node:fs/promises';
import { ClientError } from './errors.js';
import { failure, inParallel, retryOnNetwork } from './http.js';
import { sha256File } from './file-digest.js';
import { StateFile, StateWriter } from './transfer-state.js';

export interface DownloadSource {
  size: number;
  /** `sha256:<hex>`: what the finished file must hash to. */
  digest: string;
  /** A request for bytes start..end (inclusive). */
  fetchRange(start: number, end: number): Promise<Response>;
}

export interface DownloadOptions {
  dest: string;
  concurrency: number;
  chunkSize: number;
  /** Told the bytes already on disk once, then every byte as it arrives. */
  onProgress?: (bytes: number) => void;
}

export interface DownloadResult {
  /** Bytes received over the network this time. */
  transferred: number;
  /** Bytes that an earlier, interrupted pull had already written. */
  resumedFrom: number;
}

interface PullState {
  digest: string;
  size: number;
  chunkSize: number;
  done: number[];
}

/** The files a pull keeps next to its destination until the bytes are complete and verified. */
export const partFiles = (dest: string) => ({ data: `${dest}.shelf-part`, state: `${dest}.shelf-part.json` });

/**
 * Concurrent ranged download into `DEST.shelf-part`, with the finished chunks listed in
 * `DEST.shelf-part.json`; a pull of the same content after an interruption fetches only the
 * missing chunks. The file is renamed to DEST only after its SHA-256 matched.
 */
export async function download(source: DownloadSource, opts: DownloadOptions): Promise<DownloadResult> {
  const files = partFiles(opts.dest);
  const stateFile = new StateFile<PullState>(files.state);
  let state = await stateFile.read();
  const partExists = await stat(files.data).then(
    () => true,
    () => false,
  );
  if (!state || !partExists || state.digest !== source.digest || state.size !== source.size || !Array.isArray(state.done)) {
    state = { digest: source.digest, size: source.size, chunkSize: opts.chunkSize, done: [] };
  }
  const chunkSize = state.chunkSize;
  const chunks = Math.max(1, Math.ceil(source.size / chunkSize));
  const done = new Set(state.done.filter((n) => Number.isInteger(n) && n >= 0 && n < chunks));
  const chunkLength = (n: number) => Math.min(chunkSize, source.size - n * chunkSize);
  const resumedFrom = [...done].reduce((sum, n) => sum + chunkLength(n), 0);
  opts.onProgress?.(resumedFrom);

  const handle = await open(files.data, done.size > 0 ? 'r+' : 'w');
  const writer = new StateWriter(stateFile);
  await writer.save({ ...state, done: [...done] });
  let transferred = 0;
  try {
    const todo = source.size === 0 ? [] : Array.from({ length: chunks }, (_, n) => n).filter((n) => !done.has(n));
    await inParallel(todo, opts.concurrency, async (n) => {
      const start = n * chunkSize;
      const end = start + chunkLength(n) - 1;
      await retryOnNetwork(async () => {
        let position = start;
        try {
          const res = await source.fetchRange(start, end);
          if (res.status !== 206 && !(res.status === 200 && start === 0 && end === source.size - 1)) {
            if (res.ok) {
              await res.body?.cancel();
              throw new ClientError('server', `the server ignored a range request (${res.status}); cannot download in parts`);
            }
            throw await failure(res, 'download');
          }
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            if (position + chunk.length > end + 1) throw new ClientError('server', `the server sent more than bytes ${start}-${end}`);
            await handle.write(chunk, 0, chunk.length, position);
            position += chunk.length;
            transferred += chunk.length;
            opts.onProgress?.(chunk.length);
          }
        } catch (err) {
          // A cut connection surfaces as a TypeError from the body stream: a network failure.
          if (err instanceof TypeError) throw new ClientError('network', `download of bytes ${start}-${end} broke off: ${err.message}`);
          throw err;
        }
        if (position !== end + 1) throw new ClientError('network', `download cut short at byte ${position} of ${start}-${end}`);
      });
      done.add(n);
      await writer.save({ ...state, done: [...done] });
    });
    await handle.sync();
  } finally {
    await handle.close();
  }
  const digest = await sha256File(files.data);
  if (digest !== source.digest) {
    await rm(files.data, { force: true });
    await stateFile.remove();
    throw new ClientError('integrity', `downloaded bytes hash to ${digest}, expected ${source.digest}; the partial file was removed`);
  }
  await rename(files.data, opts.dest);
  await stateFile.remove();
  return { transferred, resumedFrom };
}
