#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/index.js';
import { CliError } from './errors.js';
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
    process.exit(err.exitCode);
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`shelf: ${message}\n`);
  process.exit(err instanceof CliError ? err.exitCode : 1);
}
