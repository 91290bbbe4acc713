import { SifError, type SifErrorCode } from './errors.js';

/** A fixed-size, NUL-padded text field. */
export const cString = (buf: Buffer): string => {
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
};

/** An int64 field as a JS number, refusing values beyond 2^53 rather than rounding them. */
export function int64(buf: Buffer, at: number, what: string, code: SifErrorCode = 'bad-header'): number {
  const v = buf.readBigInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new SifError(code, `${what} out of range: ${v}`);
  }
  return Number(v);
}

export const hex32 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
