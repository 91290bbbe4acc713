import type { FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import { RegistryError } from '../registry/errors.js';
import { checkText } from '../registry/text.js';

const MAX_JSON = 1 << 20;

export class PayloadTooLarge extends Error {}

/**
 * The raw request body stream; every content type is left unparsed by the server. A request
 * without a body (Content-Length 0 and no Content-Type: Fastify runs no parser) reads as empty.
 */
export const bodyStream = (request: FastifyRequest): Readable => (request.body as Readable | undefined) ?? Readable.from([]);

/**
 * Reads a JSON request body whatever its Content-Type (the Library client sends none).
 * An empty body reads as `{}`.
 */
export async function readJson(request: FastifyRequest): Promise<Record<string, unknown>> {
  const stream = request.body as Readable | undefined;
  if (!stream || typeof (stream as Readable).on !== 'function') return {};
  const chunks = await collect(stream, Number(request.headers['content-length'] ?? 0));
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RegistryError('invalid', `malformed JSON body: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RegistryError('invalid', 'JSON body must be an object');
  }
  return value as Record<string, unknown>;
}

/**
 * A whole small body (JSON, a form, a manifest), at most `limit` bytes. A larger one is drained,
 * not cut off, so the client still reads the 413 (the connection then closes: http/linger.ts).
 */
export async function readBody(request: FastifyRequest, limit: number): Promise<Buffer> {
  const stream = request.body as Readable | undefined;
  if (!stream || typeof stream.on !== 'function') return Buffer.alloc(0);
  return Buffer.concat(await collect(stream, Number(request.headers['content-length'] ?? 0), limit));
}

/**
 * Collects at most `limit` bytes. Past that it keeps draining (and dropping) the body instead
 * of destroying the socket, so the client can still read the 413.
 */
function collect(stream: Readable, declaredLength: number, limit = MAX_JSON): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let overflow = declaredLength > limit;
    const fail = () => reject(new PayloadTooLarge(`request body larger than ${limit} bytes`));
    if (overflow) {
      stream.resume();
      fail();
      return;
    }
    stream.on('data', (chunk: Buffer) => {
      if (overflow) return;
      total += chunk.length;
      if (total > limit) {
        overflow = true;
        chunks.length = 0;
        fail();
        return;
      }
      chunks.push(chunk);
    });
    stream.on('end', () => resolve(chunks));
    stream.on('error', reject);
  });
}

/** Fields of free text that may hold tabs and line breaks. */
const MULTILINE_FIELDS = new Set(['description', 'fullDescription']);

/** Field readers that turn a wrong type, or control characters, into a clear 400. */
export const field = {
  string(body: Record<string, unknown>, key: string, required = false): string {
    const v = body[key];
    if (v === undefined || v === null) {
      if (required) throw new RegistryError('invalid', `field "${key}" is required`);
      return '';
    }
    if (typeof v !== 'string') throw new RegistryError('invalid', `field "${key}" must be a string`);
    // Descriptions may span lines; no field holds other control characters (NUL least of all).
    return checkText(`field "${key}"`, v, MULTILINE_FIELDS.has(key));
  },
  integer(body: Record<string, unknown>, key: string, required = false): number {
    const v = body[key];
    if (v === undefined || v === null) {
      if (required) throw new RegistryError('invalid', `field "${key}" is required`);
      return 0;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new RegistryError('invalid', `field "${key}" must be a non-negative integer`);
    }
    return v;
  },
  boolean(body: Record<string, unknown>, key: string): boolean {
    const v = body[key];
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw new RegistryError('invalid', `field "${key}" must be a boolean`);
    return v;
  },
};
