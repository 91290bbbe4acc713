import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerCommands } from '../../src/cli/commands/index.js';

/** Every command of `shelf`, with its path of names (`admin user passwd`). */
function commandsOf(command: Command, names: string[] = []): Array<{ path: string; command: Command; inherited: Set<string> }> {
  const out: Array<{ path: string; command: Command; inherited: Set<string> }> = [];
  const walk = (c: Command, trail: string[], inherited: Set<string>) => {
    const own = new Set([...inherited, ...c.options.map((o) => o.long ?? o.short ?? '')]);
    out.push({ path: trail.join(' '), command: c, inherited: own });
    for (const sub of c.commands) walk(sub, [...trail, sub.name()], own);
  };
  walk(command, names, new Set());
  return out;
}

function program(): Command {
  const p = new Command('shelf');
  registerCommands(p);
  return p;
}

test('every command and option of shelf has a description, and every --flag a help text names exists there', () => {
  const wrong: string[] = [];
  for (const { path, command, inherited } of commandsOf(program())) {
    if (path && !command.description()) wrong.push(`${path}: no description`);
    for (const option of command.options) {
      if (!option.description.trim()) wrong.push(`${path} ${option.flags}: no description`);
      // A help text that names another option of this command must name one that is there.
      for (const [, flag] of option.description.matchAll(/(?<![\w-])(--[a-z][a-z0-9-]*)/g)) {
        if (!inherited.has(flag!) && !command.commands.some((c) => c.options.some((o) => o.long === flag))) wrong.push(`${path} ${option.flags}: mentions ${flag}, which ${path || 'shelf'} does not have`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

test('help texts say what each option is for: key tokens only where keys are added, search results per architecture', () => {
  const all = new Map(commandsOf(program()).map((c) => [c.path, c.command]));
  const option = (path: string, flag: string) => all.get(path)?.options.find((o) => o.long === flag);
  assert.match(option('key push', '--token')?.description ?? '', /signed-in users/);
  assert.equal(option('key search', '--token'), undefined, 'searching keys needs no token');
  assert.equal(option('key pull', '--token'), undefined, 'pulling keys needs no token');
  assert.match(option('search', '--arch')?.description ?? '', /one architecture/);
  // verify takes one key per --key, so the image path after it stays the image.
  assert.equal(option('verify', '--key')?.variadic, false);
});
