#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/index.js';
import { exitCodeOf } from './errors.js';
import { VERSION } from '../version.js';

const program = new Command('shelf')
  .description('Shelf: a container library for Apptainer/Singularity SIF images')
  .version(VERSION)
  .showHelpAfterError()
  .exitOverride();

registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander has printed the problem and the usage; a wrong command line is exit code 2.
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ');
  process.stderr.write(`shelf: ${message}\n`);
  process.exit(exitCodeOf(err));
}
