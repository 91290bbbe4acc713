export type RegistryErrorKind =
  | 'invalid'
  | 'unauthorized'
  | 'forbidden'
  | 'not-found'
  | 'conflict'
  | 'quota'
  | 'digest-mismatch'
  | 'size-mismatch'
  | 'not-sif'
  | 'range'
  | 'too-large'
  /** The caller holds as many of a bounded resource (open uploads) as it may. */
  | 'too-many'
  /** A service the domain depends on (a sign-in directory) did not answer. */
  | 'unavailable';

/** A rule of the domain was not met. Protocol doors map `kind` to their own status and format. */
export class RegistryError extends Error {
  constructor(
    readonly kind: RegistryErrorKind,
    message: string,
    /** What the error is about ('blob', 'manifest', 'upload', 'name', 'digest', 'tag'), for protocols with finer codes. */
    readonly subject?: string,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

export const notFound = (what: string, subject?: string): RegistryError =>
  new RegistryError('not-found', `${what} not found`, subject);
export const invalid = (message: string): RegistryError => new RegistryError('invalid', message);
