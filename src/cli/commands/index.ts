import type { Command } from 'commander';
import { registerAdmin } from './admin.js';
import { registerKey } from './key.js';
import { registerServe } from './serve.js';
import { registerInspect } from './inspect.js';
import { registerSign } from './sign.js';
import { registerVerify } from './verify.js';
import { registerRemote } from './remote.js';
import { registerPush } from './push.js';
import { registerPull } from './pull.js';
import { registerSearch } from './search.js';
import { registerTags } from './tags.js';
import { registerDelete } from './delete.js';
import { registerUntag } from './untag.js';
import { registerImages } from './images.js';
import { registerMirror } from './mirror.js';
import { registerBuilder } from './builder.js';
import { registerBuild } from './build.js';

/** Every `shelf` sub-command registers itself here; one line per command module. */
export function registerCommands(program: Command): void {
  registerServe(program);
  registerAdmin(program);
  registerInspect(program);
  registerSign(program);
  registerVerify(program);
  registerKey(program);
  registerRemote(program);
  registerPush(program);
  registerPull(program);
  registerSearch(program);
  registerTags(program);
  registerDelete(program);
  registerUntag(program);
  registerImages(program);
  registerMirror(program);
  registerBuilder(program);
  registerBuild(program);
  program.addHelpText(
    'after',
    '\nExit codes: 0 ok, 1 failure, 2 usage (bad arguments, reference or remote), 3 server unreachable,\n4 not found, 5 authentication or permission, 6 integrity (hash mismatch).',
  );
}
