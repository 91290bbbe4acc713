export type SifErrorCode =
  | 'not-sif'
  | 'truncated'
  | 'unsupported-version'
  | 'bad-header'
  | 'bad-descriptor'
  | 'too-large'
  | 'no-free-descriptor'
  | 'bad-signature'
  | 'bad-key'
  | 'key-not-found'
  | 'bad-squashfs'
  | 'io';

/** Anything wrong with a SIF file or its signatures: a typed, one-line error. */
export class SifError extends Error {
  constructor(
    readonly code: SifErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SifError';
  }
}
