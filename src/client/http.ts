import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ClientError, kindOfStatus } from './errors.js';

/** `fetch` whose network failures become one-line client errors. */
export async function send(url: string | URL, init: RequestInit = {}): Promise<Response> {
  const range = (init as { [FILE_BODY]?: FileRange })[FILE_BODY];
  try {
    if (range) return await sendFile(new URL(url), init, range);
    return await fetch(url, init);
  } catch (err) {
    if ((err as Error).name === 'AbortError' || err instanceof ClientError) throw err;
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

/** A byte range of a local file to send as a request body. */
export interface FileRange {
  file: string;
  start: number;
  /** Inclusive. */
  end: number;
  onBytes?: (n: number) => void;
}

const FILE_BODY = Symbol('file body');

/**
 * Request options whose body is a range of a file. Such requests go through node:http(s) with a
 * stream pipeline, so the file is read only as fast as the socket drains: fetch in Node 20 reads
 * request bodies ahead without bound (a 4-part upload of 256 MiB peaked at 300-400 MiB).
 */
export function fileRequest(init: Omit<RequestInit, 'body'>, range: FileRange): RequestInit {
  return { ...init, [FILE_BODY]: range } as RequestInit;
}

function sendFile(url: URL, init: RequestInit, range: FileRange): Promise<Response> {
  const headers: Record<string, string> = { 'content-length': String(range.end - range.start + 1) };
  new Headers(init.headers).forEach((value, key) => (headers[key] = value));
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(url, { method: init.method ?? 'PUT', headers }, (res) => {
      const status = res.statusCode ?? 0;
      const answer = new Headers();
      for (const [key, value] of Object.entries(res.headers)) {
        for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) answer.append(key, v);
      }
      const noBody = status === 204 || status === 304;
      if (noBody) res.resume();
      resolve(new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream), { status, statusText: res.statusMessage, headers: answer }));
    });
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        range.onBytes?.(chunk.length);
        done(null, chunk);
      },
    });
    const source = range.end < range.start ? Readable.from([]) : createReadStream(range.file, { start: range.start, end: range.end, highWaterMark: 1 << 20 });
    // A server may answer (401, 413) before taking the whole body: the answer counts, not the broken pipe.
    const broken = (err: Error & { code?: string }) => reject(new ClientError('network', `connection to ${url.origin} broke off: ${err.code ?? err.message}`));
    // The body may be all sent when the connection breaks, before any answer: that is a failure too.
    request.on('error', broken);
    request.on('close', () => broken(new Error('closed before an answer')));
    pipeline(source, counter, request).catch(broken);
  });
}

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
