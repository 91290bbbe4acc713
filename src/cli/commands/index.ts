import type { Command } from 'commander';
import { registerAdmin } from './admin.js';
import { registerKey } from './key.js';
import { registerServe } from './serve.js';
import { registerInspect } from './inspect.js';
import { registerSign } from './sign.js';
import { registerVerify } from './verify.js';

/** Every `shelf` sub-command registers itself here; one line per command module. */
export function registerCommands(program: Command): void {
  registerServe(program);
  registerAdmin(program);
  registerInspect(program);
  registerSign(program);
  registerVerify(program);
  registerKey(program);
}
