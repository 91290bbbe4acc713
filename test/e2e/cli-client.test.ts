import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shelfCli, type ShelfCli } from '../helpers/cli.js';
import { startDockerRegistry } from '../helpers/docker-registry.js';
import { run, type RunResult } from '../helpers/run.js';
import { makeLargeSif } from '../helpers/sif.js';
import { ADMIN_TOKEN, CLIENTS, FIXTURES, startShelf, type TestShelf } from '../helpers/shelf.js';
import { createUserWithToken } from '../helpers/users.js';

const libclient = path.join(CLIENTS, 'libclient');
const oras = path.join(CLIENTS, 'orasclient');
const fixture = (name: string) => path.join(FIXTURES, name);

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** A failure is one line on stderr, no stack trace, and the expected exit code. */
function assertOneLineError(r: RunResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, /^shelf: /);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.match(r.stderr, pattern);
}

describe('shelf client CLI against Shelf and docker-registry', { concurrency: false }, () => {
  let shelf: TestShelf;
  let cli: ShelfCli;
  let work: string;
  let big: string;
  let host: string;

  before(async () => {
    // 1 MiB parts so that a few MiB already go through the parallel multipart upload.
    shelf = await startShelf({ env: { SHELF_LIBRARY_MULTIPART_PART_SIZE: '1048576' } });
    host = new URL(shelf.url).host;
    cli = await shelfCli();
    work = await mkdtemp(path.join(tmpdir(), 'shelf-cli-work-'));
    big = path.join(work, 'big.sif');
    await makeLargeSif(big, work, 5 * 2 ** 20 + 12345);
  });
  after(async () => {
    await shelf?.stop();
    await rm(work, { recursive: true, force: true });
    if (cli) await rm(cli.home, { recursive: true, force: true });
  });

  test('remote add, login (wrong token refused), list, status, use, logout, remove; secrets are 0600', async () => {
    const add = await cli.run(['remote', 'add', 'local', shelf.url]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /Remote local added: .* \(in use\)/);
    assertOneLineError(await cli.run(['remote', 'add', 'local', shelf.url]), 2, /already exists/);

    assertOneLineError(await cli.run(['remote', 'login', 'local', '--token', 'not-a-valid-token-xyz']), 5, /token was refused/);
    const login = await cli.run(['remote', 'login', 'local', '--token-stdin'], { input: `${ADMIN_TOKEN}\n` });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /Logged in to local as admin/);
    const secrets = path.join(cli.env.XDG_CONFIG_HOME, 'shelf', 'credentials.json');
    if (process.platform !== 'win32') assert.equal((await stat(secrets)).mode & 0o777, 0o600);
    assert.ok((await readFile(secrets, 'utf8')).includes(ADMIN_TOKEN));
    assert.ok(!(await readFile(path.join(cli.env.XDG_CONFIG_HOME, 'shelf', 'config.yaml'), 'utf8')).includes(ADMIN_TOKEN));

    const status = await cli.run(['remote', 'status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /library\s+OK\s+http:\/\/127\.0\.0\.1/);
    assert.match(status.stdout, /keystore\s+OK/);
    assert.match(status.stdout, /API 2\.0\.0-alpha\.2/);
    assert.match(status.stdout, /Token: valid \(user admin\)/);
    const statusJson = JSON.parse((await cli.run(['remote', 'status', 'local', '--json'])).stdout) as { token: { valid: boolean; username: string }; apiVersion: string };
    assert.deepEqual(statusJson.token, { valid: true, username: 'admin' });

    assert.equal((await cli.run(['remote', 'add', 'other', 'http://127.0.0.1:2'])).code, 0);
    const list = JSON.parse((await cli.run(['remote', 'list', '--json'])).stdout) as { active: string; remotes: Array<{ name: string; loggedIn: boolean }> };
    assert.equal(list.active, 'local');
    assert.deepEqual(list.remotes.map((r) => [r.name, r.loggedIn]), [['local', true], ['other', false]]);
    assert.equal((await cli.run(['remote', 'use', 'other'])).code, 0);
    assertOneLineError(await cli.run(['remote', 'status']), 3, /cannot reach http:\/\/127\.0\.0\.1:2/);
    assert.equal((await cli.run(['remote', 'use', 'local'])).code, 0);
    assert.equal((await cli.run(['remote', 'remove', 'other'])).code, 0);
    assertOneLineError(await cli.run(['remote', 'use', 'other']), 2, /unknown remote "other"/);

    // A token that stops being valid is reported by status with a non-zero exit.
    const user = await createUserWithToken(shelf.dbUrl, 'carol');
    assert.equal((await cli.run(['remote', 'add', 'carol', shelf.url])).code, 0);
    assert.equal((await cli.run(['remote', 'login', 'carol', '--token', user])).code, 0);
    assert.equal((await cli.run(['remote', 'logout', 'carol'])).code, 0);
    const anon = await cli.run(['remote', 'status', 'carol']);
    assert.equal(anon.code, 5, anon.stderr);
    assert.match(anon.stdout, /Token: not valid \(no token\)/);
    assert.match(anon.stderr, /^shelf: carol: not logged in; shelf remote login carol/);
    assert.equal((await cli.run(['remote', 'remove', 'carol'])).code, 0);
  });

  test('Apptainer remote.yaml and docker-config.json logins are used as they are', async () => {
    const other = await shelfCli();
    try {
      await mkdir(other.env.APPTAINER_CONFIGDIR, { recursive: true });
      await writeFile(
        path.join(other.env.APPTAINER_CONFIGDIR, 'remote.yaml'),
        `Active: myshelf\nRemotes:\n  myshelf:\n    URI: ${host}\n    Token: ${ADMIN_TOKEN}\n    Insecure: true\n    System: false\n    Exclusive: false\n`,
      );
      await writeFile(
        path.join(other.env.APPTAINER_CONFIGDIR, 'docker-config.json'),
        JSON.stringify({ auths: { [host]: { auth: Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64') } } }),
      );
      const list = await other.run(['remote', 'list']);
      assert.match(list.stdout, /myshelf\s+http:\/\/127\.0\.0\.1:\d+\s+YES\s+YES\s+apptainer/);
      const push = await other.run(['push', fixture('minimal-arm64.sif'), 'library://admin/apptainer/minimal:v1']);
      assert.equal(push.code, 0, push.stderr);
      const orasPush = await other.run(['push', fixture('minimal-arm64.sif'), `oras://${host}/admin/apptainer/viaoras:v1`]);
      assert.equal(orasPush.code, 0, orasPush.stderr);
    } finally {
      await rm(other.home, { recursive: true, force: true });
    }
  });

  test('shelf push → real Library client pull; real client push → shelf pull; byte-identical (multipart, 6 parts)', async () => {
    const push = await cli.run(['push', big, 'library://admin/cli/big:v1,latest', '-D', 'pushed by shelf', '--json']);
    assert.equal(push.code, 0, push.stderr);
    const pushed = JSON.parse(push.stdout) as { arch: string; size: number; uploaded: boolean; digest: string };
    assert.equal(pushed.arch, 'amd64');
    assert.equal(pushed.uploaded, true);
    assert.equal(pushed.digest, `sha256:${await sha256(big)}`);
    const out = path.join(work, 'lib-pulled.sif');
    const pull = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'pull', 'admin/cli/big:v1', out, '--arch', 'amd64']);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await sha256(out), await sha256(big));
    const image = JSON.parse((await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'image', 'admin/cli/big:latest', '--arch', 'amd64'])).stdout) as { description: string };
    assert.equal(image.description, 'pushed by shelf');

    // The same file again: nothing to upload.
    const again = await cli.run(['push', big, 'library://admin/cli/big:v2']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already on the server; not uploaded again/);

    const lib = await run(libclient, ['--url', shelf.url, '--token', ADMIN_TOKEN, 'push', fixture('signed-pgp-rsa.sif'), 'admin/cli/fromlib:v1']);
    assert.equal(lib.code, 0, lib.stderr);
    const mine = path.join(work, 'shelf-pulled.sif');
    const back = await cli.run(['pull', mine, 'library://admin/cli/fromlib:v1', '--arch', 'amd64', '--chunk-size', '4096', '--concurrency', '3']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(await sha256(mine), await sha256(fixture('signed-pgp-rsa.sif')));
    assertOneLineError(await cli.run(['pull', mine, 'library://admin/cli/fromlib:v1', '--arch', 'amd64']), 1, /already exists \(use --force/);
    const forced = await cli.run(['pull', mine, 'library://admin/cli/big:v1', '--arch', 'amd64', '--force', '--quiet']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(forced.stdout, '');
    assert.equal(await sha256(mine), await sha256(big));
  });

  test('search, tags, tag, images, delete', async () => {
    const search = await cli.run(['search', 'pushed by', '--arch', 'amd64']);
    assert.equal(search.code, 0, search.stderr);
    assert.equal(search.stdout, 'Found 1 container images for amd64 matching "pushed by":\n\n\tlibrary://admin/cli/big:latest,v1,v2\n\t\tpushed by shelf\n\n');
    const fromlib = await cli.run(['search', 'fromlib', '--arch', 'amd64']);
    assert.match(fromlib.stdout, /library:\/\/admin\/cli\/fromlib:v1\n\t\tSigned by: [0-9A-F]{40}/);
    const signedOnly = await cli.run(['search', 'pushed by', '--arch', 'amd64', '--signed']);
    assert.match(signedOnly.stdout, /No container images found/);
    const none = await cli.run(['search', 'pushed by', '--arch', 's390x']);
    assert.match(none.stdout, /No container images found for s390x matching "pushed by"/);
    const json = JSON.parse((await cli.run(['search', 'fromlib', '--arch', 'amd64', '--json'])).stdout) as { image: Array<{ containerName: string }> };
    assert.deepEqual(json.image.map((i) => i.containerName), ['fromlib']);
    assertOneLineError(await cli.run(['search', 'ab']), 2, /at least 3 characters/);

    const tag = await cli.run(['tag', 'library://admin/cli/big:v1', 'stable', '--arch', 'amd64']);
    assert.equal(tag.code, 0, tag.stderr);
    const tags = JSON.parse((await cli.run(['tags', 'library://admin/cli/big', '--json'])).stdout) as { tags: Record<string, Record<string, string>> };
    assert.deepEqual(Object.keys(tags.tags.amd64!).sort(), ['latest', 'stable', 'v1', 'v2']);
    const table = await cli.run(['tags', 'library://admin/cli/big']);
    assert.match(table.stdout, /^stable\s+amd64\s+[0-9a-f-]{36}$/m);

    const images = await cli.run(['images', 'admin/cli']);
    assert.equal(images.code, 0, images.stderr);
    assert.match(images.stdout, /library:\/\/admin\/cli\/big:latest,stable,v1,v2\s+amd64\s+\d+\s+no/);
    assert.match(images.stdout, /library:\/\/admin\/cli\/fromlib:v1\s+amd64\s+\d+\s+unverified/);
    assert.doesNotMatch(images.stdout, /apptainer\/minimal/);
    assert.match((await cli.run(['images', 'admin'])).stdout, /library:\/\/admin\/apptainer\/minimal:v1\s+arm64/);

    const del = await cli.run(['delete', 'library://admin/cli/fromlib:v1', '--arch', 'amd64', '--yes']);
    assert.equal(del.code, 0, del.stderr);
    assertOneLineError(await cli.run(['pull', path.join(work, 'gone.sif'), 'library://admin/cli/fromlib:v1', '--arch', 'amd64']), 4, /does not exist for amd64/);
  });

  test('oras:// push and pull against Shelf: token challenge flow, pulled back by oras-go', async () => {
    const anonymous = await cli.run(['push', big, `oras://${host}/admin/orascli/big:v1`]);
    assertOneLineError(anonymous, 5, /authentication required|log in/);
    const wrong = await cli.run(['remote', 'login', '--username', 'admin', '--password-stdin', `oras://${host}`], { input: 'wrong-token-123' });
    assertOneLineError(wrong, 5, /invalid username or token|check the username/);
    const login = await cli.run(['remote', 'login', '--username', 'admin', '--password-stdin', `oras://${host}`], { input: ADMIN_TOKEN });
    assert.equal(login.code, 0, login.stderr);

    const push = await cli.run(['push', big, `oras://${host}/admin/orascli/big:v1`, '--chunk-size', '1048576']);
    assert.equal(push.code, 0, push.stderr);
    const out = path.join(work, 'oras-go.sif');
    const pull = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'pull', `${host}/admin/orascli/big:v1`, out]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(await sha256(out), await sha256(big));
    // The manifest is the one Apptainer makes: SIF config and layer media types, file name as title.
    const digest = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'digest', `${host}/admin/orascli/big:v1`]);
    assert.equal(digest.stdout.trim(), `sha256:${await sha256(big)}`);

    const orasPush = await run(oras, ['--user', 'admin', '--pass', ADMIN_TOKEN, 'push', fixture('signed-dsse-ecdsa.sif'), `${host}/admin/orascli/dsse:v1`]);
    assert.equal(orasPush.code, 0, orasPush.stderr);
    const mine = path.join(work, 'shelf-oras.sif');
    const back = await cli.run(['pull', mine, `oras://${host}/admin/orascli/dsse:v1`]);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(await sha256(mine), await sha256(fixture('signed-dsse-ecdsa.sif')));

    // The ORAS push is a Library image as well.
    const viaLibrary = path.join(work, 'oras-as-library.sif');
    assert.equal((await cli.run(['pull', viaLibrary, 'library://admin/orascli/big:v1', '--arch', 'amd64'])).code, 0);
    assert.equal(await sha256(viaLibrary), await sha256(big));

    const retag = await cli.run(['tag', `oras://${host}/admin/orascli/big:v1`, 'v2']);
    assert.equal(retag.code, 0, retag.stderr);
    assert.deepEqual((await cli.run(['tags', `oras://${host}/admin/orascli/big`])).stdout.trim().split('\n'), ['v1', 'v2']);
    // Two architectures under one Library tag are an OCI index: --arch picks the manifest.
    for (const f of ['minimal-amd64.sif', 'minimal-arm64.sif']) assert.equal((await cli.run(['push', fixture(f), 'library://admin/multi/m:latest'])).code, 0);
    for (const arch of ['amd64', 'arm64']) {
      const file = path.join(work, `multi-${arch}.sif`);
      const r = await cli.run(['pull', file, `oras://${host}/admin/multi/m:latest`, '--arch', arch]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256(file), await sha256(fixture(`minimal-${arch}.sif`)));
    }
    assertOneLineError(await cli.run(['pull', path.join(work, 'multi-x.sif'), `oras://${host}/admin/multi/m:latest`, '--arch', 'riscv64']), 4, /no image for riscv64/);
    assert.equal((await cli.run(['remote', 'logout', `oras://${host}`])).code, 0);
    assertOneLineError(await cli.run(['push', big, `oras://${host}/admin/orascli/big:v3`]), 5, /authentication required|log in/);
  });

  test("oras:// push and pull against Debian's docker-registry, pulled back by oras-go", async () => {
    const registry = await startDockerRegistry(path.join(work, 'registry'));
    try {
      const push = await cli.run(['push', big, `oras://${registry.host}/library/big:v1`, '--chunk-size', '2097152']);
      assert.equal(push.code, 0, push.stderr);
      const out = path.join(work, 'dist-oras-go.sif');
      const pull = await run(oras, ['pull', `${registry.host}/library/big:v1`, out]);
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(await sha256(out), await sha256(big));

      const orasPush = await run(oras, ['push', fixture('apptainer-layout-amd64.sif'), `${registry.host}/library/layout:v1`]);
      assert.equal(orasPush.code, 0, orasPush.stderr);
      const mine = path.join(work, 'dist-shelf.sif');
      const back = await cli.run(['pull', mine, `oras://${registry.host}/library/layout:v1`, '--chunk-size', '8192']);
      assert.equal(back.code, 0, back.stderr);
      assert.equal(await sha256(mine), await sha256(fixture('apptainer-layout-amd64.sif')));
      assert.deepEqual((await cli.run(['tags', `oras://${registry.host}/library/big`])).stdout.trim().split('\n'), ['v1']);
      const del = await cli.run(['delete', `oras://${registry.host}/library/layout:v1`, '-y']);
      assert.equal(del.code, 0, del.stderr);
      assertOneLineError(await cli.run(['pull', path.join(work, 'x.sif'), `oras://${registry.host}/library/layout:v1`]), 4, /manifest/);
    } finally {
      await registry.stop();
    }
  });

  test('Basic authentication: docker-registry with htpasswd', async () => {
    // bcrypt (cost 4) of "reg-password-1", made with Python's crypt module.
    const htpasswd = 'reguser:$2b$04$TTW905oXVT4ke.8dvOoROu0e80WibE8oikhSqf632ATCh4VVFGnkC';
    const registry = await startDockerRegistry(path.join(work, 'registry-auth'), { htpasswd });
    try {
      const ref = `oras://${registry.host}/private/minimal:v1`;
      assertOneLineError(await cli.run(['push', fixture('minimal-amd64.sif'), ref]), 5, /needs a login: shelf remote login --username USER/);
      const wrong = await cli.run(['remote', 'login', '--username', 'reguser', '--password-stdin', `oras://${registry.host}`], { input: 'nope' });
      assertOneLineError(wrong, 5, new RegExp(registry.host.replace(/\./g, '\\.')));
      const login = await cli.run(['remote', 'login', '--username', 'reguser', '--password-stdin', `oras://${registry.host}`], { input: 'reg-password-1\n' });
      assert.equal(login.code, 0, login.stderr);
      const push = await cli.run(['push', fixture('minimal-amd64.sif'), ref]);
      assert.equal(push.code, 0, push.stderr);
      const out = path.join(work, 'basic-oras-go.sif');
      const pull = await run(oras, ['--user', 'reguser', '--pass', 'reg-password-1', 'pull', `${registry.host}/private/minimal:v1`, out]);
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal(await sha256(out), await sha256(fixture('minimal-amd64.sif')));
      const mine = path.join(work, 'basic-shelf.sif');
      assert.equal((await cli.run(['pull', mine, ref])).code, 0);
      assert.equal(await sha256(mine), await sha256(fixture('minimal-amd64.sif')));
    } finally {
      await registry.stop();
    }
  });

  test('bad refs, unknown remotes, wrong tokens, missing files: one-line errors, meaningful exit codes', async () => {
    const out = path.join(work, 'never.sif');
    assertOneLineError(await cli.run(['pull', out, 'docker://alpine']), 2, /must start with library:\/\/ or oras:\/\//);
    // Short refs map as on the server: library://only/two is default/only/two, which does not exist.
    assertOneLineError(await cli.run(['pull', out, 'library://only/two']), 4, /library:\/\/default\/only\/two:latest does not exist/);
    assertOneLineError(await cli.run(['pull', out, 'library://a//b']), 2, /expected library:\/\/\[entity/);
    assertOneLineError(await cli.run(['pull', out, 'library://a/b/c:bad tag']), 2, /not a valid tag/);
    assertOneLineError(await cli.run(['push', big, 'oras://nohost']), 2, /expected oras:\/\/HOST/);
    assertOneLineError(await cli.run(['push', big, 'library://admin/x/y', '--remote', 'nope']), 2, /unknown remote "nope"/);
    assertOneLineError(await cli.run(['push', path.join(work, 'missing.sif'), 'library://admin/x/y']), 1, /missing\.sif: no such file/);
    assert.doesNotMatch((await cli.run(['push', path.join(FIXTURES, '..', '..', '..', 'package.json'), 'library://admin/x/y'])).stderr, /not a SIF image: not a SIF image/);
    assertOneLineError(await cli.run(['push', path.join(FIXTURES, '..', '..', '..', 'package.json'), 'library://admin/x/y']), 1, /not a SIF image/);
    assertOneLineError(await cli.run(['pull', out, 'library://admin/cli/nothere:v1']), 4, /does not exist/);
    assertOneLineError(await cli.run(['pull', out, `oras://${host}/admin/cli/nothere:v1`]), 5, /authentication required/);

    const env = { SHELF_TOKEN: 'a-wrong-token-0000' };
    const bad = await run(process.execPath, [path.join(path.dirname(FIXTURES), '..', '..', 'dist/cli/main.js'), 'push', big, 'library://admin/x/y'], { env: { ...cli.env, ...env } });
    assertOneLineError(bad, 5, /invalid|unauthori/i);
    const nobody = await shelfCli();
    try {
      assertOneLineError(await nobody.run(['pull', out, 'library://admin/cli/big:v1']), 2, /no remote in use/);
    } finally {
      await rm(nobody.home, { recursive: true, force: true });
    }
    const help = await cli.run(['push', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: shelf push \[options\] <file> <ref>/);
    const missingArg = await cli.run(['push', big]);
    assert.equal(missingArg.code, 2);
  });
});
