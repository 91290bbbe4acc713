import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { shelfCli, SHELF_CLI, type ShelfCli } from '../helpers/cli.js';
import { ADMIN_TOKEN, FIXTURES, startShelf, type TestShelf } from '../helpers/shelf.js';

const fixture = (name: string) => path.join(FIXTURES, name);

/**
 * Runs the CLI on a pseudo-terminal (util-linux `script`), answering each prompt once it shows,
 * as a person would (typed ahead, the terminal itself would echo the answers).
 */
function onTerminal(cli: ShelfCli, args: string[], answers: Array<[RegExp, string]>): Promise<{ code: number; output: string }> {
  const command = [process.execPath, SHELF_CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...process.env, ...cli.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let seen = 0;
  const pending = [...answers];
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
    const next = pending[0];
    if (next && next[0].test(output.slice(seen))) {
      pending.shift();
      seen = output.length;
      child.stdin.write(next[1]);
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, output });
    }),
  );
}

describe('shelf CLI: short refs, delete says what goes, untag, admin through the stored remote, passwd', { concurrency: false }, () => {
  let shelf: TestShelf;
  let cli: ShelfCli;
  let work: string;

  before(async () => {
    shelf = await startShelf();
    cli = await shelfCli();
    work = await mkdtemp(path.join(tmpdir(), 'shelf-cli-polish-'));
    assert.equal((await cli.run(['remote', 'add', 'local', shelf.url])).code, 0);
  });
  after(async () => {
    await shelf?.stop();
    if (work) await rm(work, { recursive: true, force: true });
    if (cli) await rm(cli.home, { recursive: true, force: true });
  });

  test('remote status with no token exits 5 and says how to log in', async () => {
    const r = await cli.run(['remote', 'status']);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /^shelf: local: not logged in; shelf remote login local --token-stdin\n$/);
  });

  test('shelf admin uses the remote and token stored by remote login', async () => {
    const none = await cli.run(['admin', 'user', 'list']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /shelf remote login/);
    assert.equal((await cli.run(['remote', 'login', 'local', '--token-stdin'], { input: ADMIN_TOKEN })).code, 0);
    const list = await cli.run(['admin', 'user', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^admin\tyes\tno\tlocal\t/m);
    // A --url of the stored remote's host takes that remote's token.
    const byUrl = await cli.run(['admin', 'quota', 'recount', '--url', shelf.url]);
    assert.equal(byUrl.code, 0, byUrl.stderr);
    // The maintenance commands too.
    const doctor = await cli.run(['admin', 'doctor']);
    assert.equal(doctor.code, 0, doctor.stderr);
    assert.match(doctor.stdout, /^ok: \d+ blobs consistent/m);
  });

  test('short refs: library://alpine is default/default/alpine, library://tools/grep default/tools/grep', async () => {
    const push = await cli.run(['push', fixture('minimal-amd64.sif'), 'library://alpine:3.20']);
    assert.equal(push.code, 0, push.stderr);
    const tags = await cli.run(['tags', 'library://default/default/alpine', '--json']);
    assert.deepEqual(Object.keys((JSON.parse(tags.stdout) as { tags: Record<string, Record<string, string>> }).tags.amd64!), ['3.20']);
    const pulled = path.join(work, 'alpine.sif');
    const pull = await cli.run(['pull', pulled, 'library://alpine:3.20', '--arch', 'amd64']);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal((await cli.run(['push', fixture('minimal-amd64.sif'), 'library://tools/grep:1.0'])).code, 0);
    assert.equal((await cli.run(['tags', 'library://default/tools/grep'])).code, 0);
  });

  test('delete names the image and all its tags first, and needs --yes off a terminal; untag removes one tag', async () => {
    const ref = 'library://admin/polish/tool';
    assert.equal((await cli.run(['push', fixture('minimal-amd64.sif'), `${ref}:1.0,latest,stable`])).code, 0);

    const refused = await cli.run(['delete', `${ref}:1.0`, '--arch', 'amd64']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /This deletes image sha256\.[0-9a-f]{64} \(amd64\) of library:\/\/admin\/polish\/tool, with its amd64 tags 1\.0, latest, stable\./);
    assert.match(refused.stderr, /To remove only the tag 1\.0: shelf untag library:\/\/admin\/polish\/tool:1\.0 --arch amd64/);
    assert.match(refused.stderr, /^shelf: library:\/\/admin\/polish\/tool:1\.0 \(amd64\): not deleted; give --yes to confirm$/m);
    assert.equal((await cli.run(['tags', ref])).stdout.split('\n').filter((l) => /amd64/.test(l)).length, 3, 'nothing deleted');

    const untag = await cli.run(['untag', `${ref}:stable`]);
    assert.equal(untag.code, 0, untag.stderr);
    assert.match(untag.stdout, /Removed tag library:\/\/admin\/polish\/tool:stable \(amd64\)/);
    const left = JSON.parse((await cli.run(['tags', ref, '--json'])).stdout) as { tags: Record<string, Record<string, string>> };
    assert.deepEqual(Object.keys(left.tags.amd64!).sort(), ['1.0', 'latest']);
    const gone = await cli.run(['untag', `${ref}:stable`]);
    assert.equal(gone.code, 4, gone.stderr);

    // On a terminal the question is asked; "n" keeps everything, "y" deletes.
    const question = /Delete library:\/\/admin\/polish\/tool:1\.0 \(amd64\)\? \[y\/N\] /;
    const no = await onTerminal(cli, ['delete', `${ref}:1.0`, '--arch', 'amd64'], [[question, 'n\r']]);
    assert.equal(no.code, 1, no.output);
    assert.match(no.output, /nothing deleted/);
    assert.equal(Object.keys((JSON.parse((await cli.run(['tags', ref, '--json'])).stdout) as typeof left).tags.amd64!).length, 2);
    const yes = await onTerminal(cli, ['delete', `${ref}:1.0`, '--arch', 'amd64'], [[question, 'y\r']]);
    assert.equal(yes.code, 0, yes.output);
    assert.match(yes.output, /Deleted library:\/\/admin\/polish\/tool:1\.0 \(amd64; tags 1\.0, latest\)/);
    const pull = await cli.run(['pull', path.join(work, 'gone.sif'), `${ref}:latest`, '--arch', 'amd64']);
    assert.equal(pull.code, 4, pull.stderr);

    assert.equal((await cli.run(['push', fixture('minimal-amd64.sif'), `${ref}:2.0`])).code, 0);
    const json = await cli.run(['delete', `${ref}:2.0`, '--arch', 'amd64', '--yes', '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual((JSON.parse(json.stdout) as { tags: string[] }).tags, ['2.0']);
  });

  test('admin user passwd: from standard input or asked twice on a terminal; the user then signs in', async () => {
    assert.equal((await cli.run(['admin', 'user', 'add', 'dora'])).code, 0);
    const login = (password: string) =>
      fetch(`${shelf.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'dora', password }) });
    assert.equal((await login('first-password-1')).status, 401);
    const set = await cli.run(['admin', 'user', 'passwd', 'dora', '--password-stdin'], { input: 'first-password-1\n' });
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /password of dora set/);
    assert.equal((await login('first-password-1')).status, 200);

    const short = await cli.run(['admin', 'user', 'passwd', 'dora', '--password-stdin'], { input: 'short' });
    assert.equal(short.code, 1);
    assert.match(short.stderr, /at least 8 characters/);
    const noTty = await cli.run(['admin', 'user', 'passwd', 'dora']);
    assert.equal(noTty.code, 2);
    assert.match(noTty.stderr, /--password-stdin/);

    const differ = await onTerminal(cli, ['admin', 'user', 'passwd', 'dora'], [[/New password: /, 'second-password-2\r'], [/Again: /, 'something-else\r']]);
    assert.equal(differ.code, 1, differ.output);
    assert.match(differ.output, /the passwords differ; nothing changed/);
    const asked = await onTerminal(cli, ['admin', 'user', 'passwd', 'dora'], [[/New password: /, 'second-password-2\r'], [/Again: /, 'second-password-2\r']]);
    assert.equal(asked.code, 0, asked.output);
    assert.match(asked.output, /password of dora set/);
    assert.doesNotMatch(asked.output, /second-password-2/, 'the password is not echoed');
    assert.equal((await login('second-password-2')).status, 200);
  });
});
