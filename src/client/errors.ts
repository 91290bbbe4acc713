/** What went wrong, in terms a script can act on; the CLI turns each kind into an exit code. */
export type ClientErrorKind = 'usage' | 'network' | 'not-found' | 'auth' | 'integrity' | 'server';

/** An error from the client library, its message one line meant for the user. */
export class ClientError extends Error {
  constructor(
    readonly kind: ClientErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

/** The error kind an HTTP status stands for. */
export function kindOfStatus(status: number): ClientErrorKind {
  if (status === 401 || status === 403) return 'auth';
  if (status === 404) return 'not-found';
  if (status === 400 || status === 416) return 'usage';
  return 'server';
}
