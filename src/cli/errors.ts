import { ClientError, type ClientErrorKind } from '../client/errors.js';

/** An error meant for the user: printed as one line, never with a stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Exit codes (README "Exit codes"): what a script can tell apart. */
export const EXIT: Record<ClientErrorKind | 'failure', number> = {
  failure: 1,
  usage: 2,
  network: 3,
  'not-found': 4,
  auth: 5,
  integrity: 6,
  server: 1,
};

/** The exit code for an error thrown by a command. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof ClientError) return EXIT[err.kind];
  return EXIT.failure;
}
