import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ClientConfig } from '../../src/client/config.js';
import { ClientError } from '../../src/client/errors.js';

let dir: string;
let env: NodeJS.ProcessEnv;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'shelf-config-'));
  env = { XDG_CONFIG_HOME: path.join(dir, 'xdg'), APPTAINER_CONFIGDIR: path.join(dir, 'apptainer'), DOCKER_CONFIG: path.join(dir, 'docker') };
});
after(() => rm(dir, { recursive: true, force: true }));

test('remotes: add (first is used), URLs normalized, tokens only in the 0600 credentials file, remove', async () => {
  const config = await ClientConfig.load(env);
  await config.add('one', 'shelf.example/');
  await config.add('two', 'http://127.0.0.1:8080/');
  await config.setToken('one', 'secret-token-1');
  const again = await ClientConfig.load(env);
  assert.equal(again.activeName(), 'one');
  assert.deepEqual(
    again.remotes().map((r) => [r.name, r.url, r.token]),
    [
      ['one', 'https://shelf.example', 'secret-token-1'],
      ['two', 'http://127.0.0.1:8080', null],
    ],
  );
  const shelfDir = path.join(env.XDG_CONFIG_HOME!, 'shelf');
  assert.ok(!(await readFile(path.join(shelfDir, 'config.yaml'), 'utf8')).includes('secret-token-1'));
  if (process.platform !== 'win32') assert.equal((await stat(path.join(shelfDir, 'credentials.json'))).mode & 0o777, 0o600);
  await again.use('two');
  await again.remove('one');
  const last = await ClientConfig.load(env);
  assert.equal(last.activeName(), 'two');
  assert.ok(!(await readFile(path.join(shelfDir, 'credentials.json'), 'utf8')).includes('secret-token-1'));
  assert.throws(() => last.remote('one'), (e: unknown) => e instanceof ClientError && e.kind === 'usage');
  await assert.rejects(last.add('bad name', 'x'), /not a valid remote name/);
  await assert.rejects(last.add('ftp', 'ftp://x'), /only http and https/);
});

test("Apptainer's remote.yaml and docker configs are read, Shelf's own settings win", async () => {
  await mkdir(env.APPTAINER_CONFIGDIR!, { recursive: true });
  await mkdir(env.DOCKER_CONFIG!, { recursive: true });
  await writeFile(
    path.join(env.APPTAINER_CONFIGDIR!, 'remote.yaml'),
    'Active: cloud\nRemotes:\n  cloud:\n    URI: cloud.example.org\n    Token: apptainer-token\n  two:\n    URI: other.example\n',
  );
  await writeFile(path.join(env.APPTAINER_CONFIGDIR!, 'docker-config.json'), JSON.stringify({ auths: { 'reg.example:5000': { auth: Buffer.from('ann:pw1').toString('base64') } } }));
  await writeFile(path.join(env.DOCKER_CONFIG!, 'config.json'), JSON.stringify({ auths: { 'https://reg.example:5000': { auth: Buffer.from('bob:pw2').toString('base64') }, 'docker.example': { username: 'cy', password: 'pw3' } } }));
  const config = await ClientConfig.load(env);
  assert.equal(config.activeName(), 'two', 'Shelf’s own choice stays');
  assert.deepEqual(config.remote('cloud'), { name: 'cloud', url: 'https://cloud.example.org', token: 'apptainer-token', source: 'apptainer' });
  assert.equal(config.remote('two').source, 'shelf');
  assert.deepEqual(config.registryCredentials('reg.example:5000'), { username: 'ann', password: 'pw1' });
  assert.deepEqual(config.registryCredentials('docker.example'), { username: 'cy', password: 'pw3' });
  await config.setRegistryCredentials('reg.example:5000', { username: 'own', password: 'pw4' });
  assert.deepEqual((await ClientConfig.load(env)).registryCredentials('reg.example:5000'), { username: 'own', password: 'pw4' });
  await assert.rejects(config.remove('cloud'), /comes from Apptainer/);
});
