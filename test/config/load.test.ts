import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { parseByteSize } from '../../src/config/schema.js';

test('defaults: 127.0.0.1:8080, ./data, 64 MiB parts', async () => {
  const c = await loadConfig({ env: {} });
  assert.equal(c.listen, '127.0.0.1:8080');
  assert.equal(c.data, './data');
  assert.equal(c.db, undefined);
  assert.equal(c.library.multipartPartSize, 64 * 2 ** 20);
  assert.equal(c.log.level, 'info');
});

test('precedence: defaults < YAML file < SHELF_* environment < flags', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'shelf-config-'));
  const file = path.join(dir, 'shelf.yaml');
  await writeFile(file, 'listen: 0.0.0.0:9000\ndata: /srv/file\npublicUrl: https://file.example\nlibrary:\n  multipartPartSize: 32MiB\n  defaultQuota: 1GiB\n');
  const fileOnly = await loadConfig({ file, env: {} });
  assert.equal(fileOnly.listen, '0.0.0.0:9000');
  assert.equal(fileOnly.library.multipartPartSize, 32 * 2 ** 20);
  assert.equal(fileOnly.library.defaultQuota, 2 ** 30);

  const withEnv = await loadConfig({
    file,
    env: { SHELF_DATA: '/srv/env', SHELF_LIBRARY_MULTIPART_PART_SIZE: '16MiB', SHELF_LOG_LEVEL: 'debug', SHELF_LIBRARY_UPLOAD_URL_TTL: '60' },
  });
  assert.equal(withEnv.data, '/srv/env');
  assert.equal(withEnv.listen, '0.0.0.0:9000');
  assert.equal(withEnv.library.multipartPartSize, 16 * 2 ** 20);
  assert.equal(withEnv.library.uploadUrlTtl, 60);
  assert.equal(withEnv.library.defaultQuota, 2 ** 30);
  assert.equal(withEnv.log.level, 'debug');

  const withFlags = await loadConfig({ file, env: { SHELF_DATA: '/srv/env' }, flags: { data: '/srv/flag', listen: undefined } });
  assert.equal(withFlags.data, '/srv/flag');
  assert.equal(withFlags.listen, '0.0.0.0:9000');

  const viaEnvFile = await loadConfig({ env: { SHELF_CONFIG: file } });
  assert.equal(viaEnvFile.publicUrl, 'https://file.example');
});

test('validation names the key and the problem', async () => {
  await assert.rejects(loadConfig({ env: {}, flags: { listen: 'nonsense' } }), (e: Error) => e instanceof ConfigError && /listen: must be HOST:PORT/.test(e.message));
  await assert.rejects(loadConfig({ env: { SHELF_PUBLIC_URL: 'ftp://x' } }), /publicUrl: must be an http/);
  await assert.rejects(loadConfig({ env: { SHELF_LIBRARY_MULTIPART_PART_SIZE: 'lots' } }), /library.multipartPartSize: not a byte size/);
  await assert.rejects(loadConfig({ env: { SHELF_BOOTSTRAP_TOKEN: 'short' } }), /bootstrapToken: must be at least 8/);
  await assert.rejects(loadConfig({ file: '/nonexistent/shelf.yaml', env: {} }), /cannot read config file/);
  const dir = await mkdtemp(path.join(tmpdir(), 'shelf-config-'));
  await writeFile(path.join(dir, 'bad.yaml'), 'listen: [unclosed');
  await assert.rejects(loadConfig({ file: path.join(dir, 'bad.yaml'), env: {} }), /not valid YAML/);
  await writeFile(path.join(dir, 'unknown.yaml'), 'listn: 1.2.3.4:5');
  await assert.rejects(loadConfig({ file: path.join(dir, 'unknown.yaml'), env: {} }), /Unrecognized key.*listn/);
});

test('ldap: off by default, read from the environment, validated', async () => {
  assert.equal((await loadConfig({ env: {} })).ldap, undefined);
  const on = await loadConfig({ env: { SHELF_LDAP_URL: 'ldap://dir.example:389', SHELF_LDAP_USER_BASE: 'ou=people,dc=example', SHELF_LDAP_START_TLS: 'true' } });
  assert.equal(on.ldap?.url, 'ldap://dir.example:389');
  assert.equal(on.ldap?.userFilter, '(uid={username})');
  assert.equal(on.ldap?.startTls, true);
  await assert.rejects(loadConfig({ env: { SHELF_LDAP_URL: 'http://dir', SHELF_LDAP_USER_BASE: 'dc=x' } }), /ldap.url: must be ldap/);
  await assert.rejects(loadConfig({ env: { SHELF_LDAP_URL: 'ldap://dir' } }), /ldap.userBase/);
  await assert.rejects(
    loadConfig({ env: { SHELF_LDAP_URL: 'ldap://dir', SHELF_LDAP_USER_BASE: 'dc=x', SHELF_LDAP_USER_FILTER: '(uid=bob)' } }),
    /ldap.userFilter: must contain \{username\}/,
  );
});

test('oidc: off by default, read from the environment with defaults, validated', async () => {
  assert.equal((await loadConfig({ env: {} })).oidc, undefined);
  const on = await loadConfig({ env: { SHELF_OIDC_ISSUER: 'https://login.example/realms/x', SHELF_OIDC_CLIENT_ID: 'shelf', SHELF_OIDC_SCOPES: 'profile,groups', SHELF_OIDC_ADMIN_GROUP: 'admins' } });
  assert.equal(on.oidc?.issuer, 'https://login.example/realms/x');
  assert.equal(on.oidc?.clientSecret, undefined, 'no secret: a public client');
  assert.deepEqual(on.oidc?.scopes, ['openid', 'profile', 'groups']);
  assert.equal(on.oidc?.usernameClaim, 'preferred_username');
  assert.equal(on.oidc?.groupsClaim, 'groups');
  assert.equal(on.oidc?.adminGroup, 'admins');
  assert.equal(on.oidc?.groupRole, 'writer');
  assert.equal(on.oidc?.name, 'OpenID Connect');
  assert.deepEqual((await loadConfig({ env: { SHELF_OIDC_ISSUER: 'https://l.example', SHELF_OIDC_CLIENT_ID: 'c' } })).oidc?.scopes, ['openid', 'profile', 'email']);
  await assert.rejects(loadConfig({ env: { SHELF_OIDC_ISSUER: 'login.example', SHELF_OIDC_CLIENT_ID: 'c' } }), /oidc.issuer: must be an http/);
  await assert.rejects(loadConfig({ env: { SHELF_OIDC_ISSUER: 'https://l.example' } }), /oidc.clientId/);
  await assert.rejects(loadConfig({ env: { SHELF_OIDC_ISSUER: 'https://l.example', SHELF_OIDC_CLIENT_ID: 'c', SHELF_OIDC_REDIRECT_URL: 'https://shelf.example/callback' } }), /oidc.redirectUrl: must end in \/api\/oidc\/callback/);
  await assert.rejects(loadConfig({ env: { SHELF_OIDC_ISSUER: 'https://l.example', SHELF_OIDC_CLIENT_ID: 'c', SHELF_OIDC_REDIRECT_URL: 'nonsense' } }), /oidc.redirectUrl: must be an http/);
  assert.equal((await loadConfig({ env: { SHELF_OIDC_ISSUER: 'https://l.example', SHELF_OIDC_CLIENT_ID: 'c', SHELF_OIDC_REDIRECT_URL: 'https://shelf.example/api/oidc/callback' } })).oidc?.redirectUrl, 'https://shelf.example/api/oidc/callback');
  await assert.rejects(loadConfig({ env: { SHELF_OIDC_ISSUER: 'https://l.example', SHELF_OIDC_CLIENT_ID: 'c', SHELF_OIDC_GROUP_ROLE: 'owner' } }), /oidc.groupRole/);
});

test('byte sizes', () => {
  assert.equal(parseByteSize('1MiB'), 1048576);
  assert.equal(parseByteSize('10GiB'), 10 * 2 ** 30);
  assert.equal(parseByteSize('500MB'), 500e6);
  assert.equal(parseByteSize('1.5 KiB'), 1536);
  assert.equal(parseByteSize('12'), 12);
  assert.equal(parseByteSize('12 parsecs'), null);
  assert.equal(parseByteSize(''), null);
});

test('garbage collection: an hour of grace and an hourly schedule by default; durations in seconds or with a unit', async () => {
  const defaults = await loadConfig({ env: {} });
  assert.deepEqual(defaults.gc, { grace: 3600, interval: 3600 });
  const fromEnv = await loadConfig({ env: { SHELF_GC_GRACE: '0', SHELF_GC_INTERVAL: '30m' } });
  assert.deepEqual(fromEnv.gc, { grace: 0, interval: 1800 });
  const dir = await mkdtemp(path.join(tmpdir(), 'shelf-config-'));
  await writeFile(path.join(dir, 'c.yaml'), 'gc:\n  grace: 2d\n  interval: 90s\n');
  assert.deepEqual((await loadConfig({ env: {}, file: path.join(dir, 'c.yaml') })).gc, { grace: 172800, interval: 90 });
  await assert.rejects(loadConfig({ env: { SHELF_GC_GRACE: 'soon' } }), (e: Error) => e instanceof ConfigError && /gc\.grace: not a duration: "soon"/.test(e.message));
});

test('blob store settings: SHELF_BLOBS, SHELF_BLOBS_REDIRECT, SHELF_BLOBS_PUBLIC_ENDPOINT', async () => {
  const defaults = await loadConfig({ env: {} });
  assert.equal(defaults.blobs, undefined);
  assert.equal(defaults.blobsRedirect, true);
  const c = await loadConfig({
    env: { SHELF_BLOBS: 's3://b/p?endpoint=http://s3:8080', SHELF_BLOBS_REDIRECT: 'false', SHELF_BLOBS_PUBLIC_ENDPOINT: 'https://s3.example.org' },
  });
  assert.equal(c.blobs, 's3://b/p?endpoint=http://s3:8080');
  assert.equal(c.blobsRedirect, false);
  assert.equal(c.blobsPublicEndpoint, 'https://s3.example.org');
  const flag = await loadConfig({ env: { SHELF_BLOBS: 'file:///a' }, flags: { blobs: 'file:///b' } });
  assert.equal(flag.blobs, 'file:///b');
});
