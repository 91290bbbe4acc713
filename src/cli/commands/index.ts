import type { Command } from 'commander';
import { registerAdmin } from './admin.js';
import { registerKey } from './key.js';
import { registerServe } from './serve.js';
import { registerSifCommands } from './sif.js';

/** Every `shelf` sub-command registers itself here; one line per command module. */
export function registerCommands(program: Command): void {
  registerServe(program);
  registerAdmin(program);
  registerSifCommands(program);
  registerKey(program);
}
