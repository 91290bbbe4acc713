/** Standard input as text, without its final newline (`--password-stdin`, `--token-stdin`). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * Asks on the terminal without echoing what is typed (tokens, passwords), one answer per question,
 * through one reader so that nothing typed ahead is lost between questions.
 */
export async function promptSecrets(questions: string[]): Promise<string[]> {
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  // Readline echoes what it reads through this method: the prompts are written directly instead.
  (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => undefined;
  const lines = rl[Symbol.asyncIterator]();
  const answers: string[] = [];
  try {
    for (const question of questions) {
      process.stderr.write(question);
      const next = await lines.next();
      process.stderr.write('\n');
      answers.push(next.done ? '' : String(next.value).trim());
    }
  } finally {
    rl.close();
  }
  return answers;
}

export async function promptSecret(question: string): Promise<string> {
  return (await promptSecrets([question]))[0]!;
}
