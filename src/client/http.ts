import { open, type FileHandle } from 'node:fs/promises';
import { ClientError, kindOfStatus } from './errors.js';

/** `fetch` whose network failures become one-line client errors. */
export async function send(url: string | URL, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    const cause = (err as Error & { cause?: Error & { code?: string } }).cause;
    const origin = new URL(url).origin;
    if (cause?.code?.startsWith('UND_ERR')) throw new ClientError('network', `connection to ${origin} broke off: ${cause.message}`);
    throw new ClientError('network', `cannot reach ${origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
}

/** The server's own words for a failed response: Library `{"error":{…}}`, OCI `{"errors":[…]}`, or the status. */
export async function errorMessage(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { message?: string }; errors?: Array<{ message?: string; code?: string }>; message?: string };
    const msg = body.error?.message ?? body.errors?.map((e) => e.message ?? e.code).join('; ') ?? body.message;
    if (msg) return `${msg} (${res.status})`;
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`.trim();
}

/** Turns a failed response into a client error saying what was being done. */
export async function failure(res: Response, doing: string): Promise<ClientError> {
  return new ClientError(kindOfStatus(res.status), `${doing}: ${await errorMessage(res)}`);
}

/** `n` workers take items from the list until it is empty; the first failure stops the rest. */
export async function inParallel<T>(items: T[], n: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const worker = async () => {
    while (failed === null && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== null) throw failed;
}

/**
 * A request body streaming bytes start..end (inclusive) of a file, counting them as they go.
 * Pull-based with one chunk queued: fetch reads the file only as fast as the socket takes it
 * (Readable.toWeb in Node 20 reads ahead without bound, which held whole parts in memory).
 */
export function fileBody(file: string, start: number, end: number, onBytes?: (n: number) => void): ReadableStream<Uint8Array> {
  const CHUNK = 1 << 20;
  let handle: FileHandle | null = null;
  let position = start;
  const close = async () => {
    const h = handle;
    handle = null;
    await h?.close();
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        handle ??= await open(file, 'r');
        const length = Math.min(CHUNK, end + 1 - position);
        if (length <= 0) {
          await close();
          controller.close();
          return;
        }
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await handle.read(buffer, 0, length, position);
        if (bytesRead === 0) {
          await close();
          controller.error(new Error(`${file} ended at byte ${position}, before ${end + 1}`));
          return;
        }
        position += bytesRead;
        onBytes?.(bytesRead);
        controller.enqueue(buffer.subarray(0, bytesRead));
      },
      cancel: close,
    },
    { highWaterMark: 1 },
  );
}

/** `fetch` options for a streamed body (undici wants `duplex`). */
export const streamed = (init: RequestInit & { body: ReadableStream }): RequestInit => ({ ...init, duplex: 'half' }) as RequestInit;

/** Runs `fn` again (up to `attempts` times in all, with a growing pause) when the network failed it. */
export async function retryOnNetwork<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const network = err instanceof ClientError ? err.kind === 'network' : err instanceof TypeError;
      if (!network || attempt >= attempts) throw err;
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}
