import type { Command } from 'commander';
import { ClientConfig } from '../../client/config.js';
import { ClientError } from '../../client/errors.js';
import { LibraryClient, discoverServices } from '../../client/library.js';
import { registryBaseUrl } from '../../client/refs.js';
import { RegistryAuth } from '../../client/registry-auth.js';
import { CliError } from '../errors.js';
import { promptSecret, readStdin } from '../secrets.js';
import { outputOptions, printJson, say, type OutputOpts } from './client-common.js';

/** The secret from --flag, --flag-stdin, or a prompt on a terminal. */
async function secret(value: string | undefined, fromStdin: boolean | undefined, question: string): Promise<string | undefined> {
  if (fromStdin) return (await readStdin()).trim();
  if (value !== undefined) return value;
  if (process.stdin.isTTY) return promptSecret(question);
  return undefined;
}

/** `oras://HOST[:PORT]` (also `docker://`) → HOST[:PORT]; null for a remote name. */
function registryHost(arg: string | undefined): string | null {
  const m = /^(?:oras|docker):\/\/([^/]+)\/?$/.exec(arg ?? '');
  if (m) return m[1]!;
  if (arg && /^[a-z]+:\/\//.test(arg)) throw new ClientError('usage', `${arg}: give a remote name or oras://HOST[:PORT]`);
  return null;
}

interface LoginOpts {
  token?: string;
  tokenStdin?: boolean;
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

/** `shelf remote add|list|use|remove|login|logout|status`. */
export function registerRemote(program: Command): void {
  const remote = program.command('remote').description('Library remotes and registry logins (config in $XDG_CONFIG_HOME/shelf)');

  remote
    .command('add <name> <url>')
    .description('add a Library remote (a Shelf server, or any Library API frontend); the first one added is used')
    .action(async (name: string, url: string) => {
      const config = await ClientConfig.load();
      const added = await config.add(name, url);
      process.stdout.write(`Remote ${name} added: ${added.url}${config.activeName() === name ? ' (in use)' : ''}\n`);
    });

  outputOptions(remote.command('list').description('list remotes and registry logins')).action(async (opts: OutputOpts) => {
    const config = await ClientConfig.load();
    const active = config.activeName();
    const remotes = config.remotes();
    const registries = config.registryHosts();
    if (opts.json) {
      printJson({
        active,
        remotes: remotes.map((r) => ({ name: r.name, url: r.url, loggedIn: r.token !== null, source: r.source })),
        registries,
      });
      return;
    }
    if (remotes.length === 0) say(opts, 'No remotes: add one with shelf remote add NAME URL');
    else {
      const width = Math.max(4, ...remotes.map((r) => r.name.length));
      say(opts, `${'NAME'.padEnd(width)}  ${'URI'.padEnd(32)}  ACTIVE  LOGGED IN  SOURCE`);
      for (const r of remotes) {
        say(opts, `${r.name.padEnd(width)}  ${r.url.padEnd(32)}  ${(r.name === active ? 'YES' : 'NO').padEnd(6)}  ${(r.token ? 'YES' : 'NO').padEnd(9)}  ${r.source}`);
      }
    }
    if (registries.length) {
      say(opts);
      say(opts, 'Registry logins:');
      for (const host of registries) say(opts, `  oras://${host}`);
    }
  });

  remote
    .command('use <name>')
    .description('use this remote for library:// references without a host')
    .action(async (name: string) => {
      await (await ClientConfig.load()).use(name);
      process.stdout.write(`Remote ${name} is now in use\n`);
    });

  remote
    .command('remove <name>')
    .description('remove a remote and its token')
    .action(async (name: string) => {
      await (await ClientConfig.load()).remove(name);
      process.stdout.write(`Remote ${name} removed\n`);
    });

  remote
    .command('login [name]')
    .description('store a token for a remote (checked first), or a username and password/token for oras://HOST[:PORT]')
    .option('--token <token>', 'the API token')
    .option('--token-stdin', 'read the token from standard input')
    .option('-u, --username <user>', 'registry username (oras://)')
    .option('-p, --password <password>', 'registry password or API token (oras://)')
    .option('--password-stdin', 'read the registry password or token from standard input')
    .action(async (name: string | undefined, opts: LoginOpts) => {
      const config = await ClientConfig.load();
      const host = registryHost(name);
      if (host) {
        if (!opts.username) throw new CliError('a registry login needs --username', 2);
        const password = await secret(opts.password ?? opts.token, opts.passwordStdin || opts.tokenStdin, 'Password / token: ');
        if (!password) throw new CliError('give --password-stdin (or --password)', 2);
        const creds = { username: opts.username, password };
        await new RegistryAuth(host, creds).ping(registryBaseUrl(host));
        await config.setRegistryCredentials(host, creds);
        process.stdout.write(`Logged in to oras://${host} as ${opts.username}\n`);
        return;
      }
      const r = config.pick(name);
      if (opts.token && opts.tokenStdin) throw new CliError('give either --token or --token-stdin', 2);
      const token = await secret(opts.token, opts.tokenStdin, 'Access token: ');
      if (!token) throw new CliError('give --token TOKEN or --token-stdin', 2);
      const status = await (await LibraryClient.discover(r.url, token)).tokenStatus();
      if (!status.valid) throw new ClientError('auth', `${r.name}: the token was refused (${status.message}); nothing stored`);
      await config.setToken(r.name, token);
      process.stdout.write(`Logged in to ${r.name}${status.username ? ` as ${status.username}` : ''}\n`);
    });

  remote
    .command('logout [name]')
    .description('forget the token of a remote (default: the one in use), or the login for oras://HOST[:PORT]')
    .action(async (name: string | undefined) => {
      const config = await ClientConfig.load();
      const host = registryHost(name);
      if (host) {
        if (!config.registryHosts().includes(host)) throw new CliError(`not logged in to oras://${host}`, 2);
        await config.setRegistryCredentials(host, null);
        process.stdout.write(`Logged out of oras://${host}\n`);
        return;
      }
      const r = config.pick(name);
      await config.setToken(r.name, null);
      process.stdout.write(`Logged out of ${r.name}\n`);
    });

  outputOptions(remote.command('status [name]').description('services, versions and token validity of a remote')).action(
    async (name: string | undefined, opts: OutputOpts) => {
      const r = (await ClientConfig.load()).pick(name);
      const services = await discoverServices(r.url);
      const libraryUrl = (services?.libraryAPI?.uri ?? r.url).replace(/\/+$/, '');
      const client = new LibraryClient(libraryUrl, r.token);
      const version = await client.version();
      const token = await client.tokenStatus();
      const rows = [
        ...Object.entries(services ?? {}).map(([key, s]) => ({ service: key.replace(/API$/, ''), uri: s.uri ?? '' })),
      ];
      if (opts.json) {
        printJson({ remote: r.name, url: r.url, services: services ?? {}, version: version.version, apiVersion: version.apiVersion, token: token.valid ? { valid: true, username: token.username } : { valid: false, reason: token.message } });
      } else {
        say(opts, `Checking status of remote: ${r.name} (${r.url})`);
        say(opts);
        say(opts, `${'SERVICE'.padEnd(10)} ${'STATUS'.padEnd(7)} URI`);
        if (rows.length === 0) say(opts, `${'library'.padEnd(10)} ${'OK'.padEnd(7)} ${libraryUrl} (no service discovery)`);
        for (const row of rows) say(opts, `${row.service.padEnd(10)} ${'OK'.padEnd(7)} ${row.uri}`);
        say(opts);
        say(opts, `Library version: ${version.version}, API ${version.apiVersion}`);
        say(opts, `Token: ${token.valid ? `valid (user ${token.username ?? 'unknown'})` : `not valid (${token.message})`}`);
      }
      if (!token.valid) {
        const why = r.token ? 'the stored token is not valid' : 'not logged in';
        throw new ClientError('auth', `${r.name}: ${why}; shelf remote login ${r.name} --token-stdin`);
      }
    },
  );
}
