import { CliError } from './errors.js';

/**
 * Asks before a destructive step: `--yes` goes ahead, a terminal gets a y/N question (on standard
 * error, so standard output stays the result), anything else is refused with how to confirm.
 */
export async function confirm(question: string, opts: { yes?: boolean }, refusal: string): Promise<void> {
  if (opts.yes) return;
  if (!process.stdin.isTTY || !process.stderr.isTTY) throw new CliError(`${refusal}; give --yes to confirm`, 2);
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new CliError('nothing deleted', 1);
  } finally {
    rl.close();
  }
}
