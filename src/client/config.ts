import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { ClientError } from './errors.js';
import { registryBaseUrl } from './refs.js';

/**
 * The client's remotes (`config.yaml`) and secrets (`credentials.json`, mode 0600) under
 * `$XDG_CONFIG_HOME/shelf/`. Apptainer's remote.yaml and docker config files are read too
 * (never written), so logins made with Apptainer or Docker keep working.
 */
export interface Remote {
  name: string;
  url: string;
  token: string | null;
  /** Where the remote is defined: Shelf's own config or Apptainer's remote.yaml. */
  source: 'shelf' | 'apptainer';
}

export interface RegistryCredentials {
  username: string;
  password: string;
}

interface ConfigFile {
  active?: string | null;
  remotes?: Record<string, { url: string }>;
}

interface SecretsFile {
  tokens?: Record<string, string>;
  registries?: Record<string, RegistryCredentials>;
}

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_CONFIG_HOME) return path.join(env.XDG_CONFIG_HOME, 'shelf');
  if (process.platform === 'win32' && env.APPDATA) return path.join(env.APPDATA, 'shelf');
  return path.join(homedir(), '.config', 'shelf');
}

export function apptainerDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.APPTAINER_CONFIGDIR ?? path.join(homedir(), '.apptainer');
}

/** `host`, `host:port` or a URL → a base URL without a trailing slash. */
export function normalizeUrl(text: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : registryBaseUrl(text.replace(/\/.*$/, ''));
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ClientError('usage', `${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ClientError('usage', `${text}: only http and https URLs are supported`);
  return url.toString().replace(/\/+$/, '');
}

async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return null;
  }
}

/** Writes a file that only its owner may read, replacing the old one in one step. */
async function writePrivate(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

export class ClientConfig {
  private constructor(
    readonly dir: string,
    private config: ConfigFile,
    private secrets: SecretsFile,
    private readonly apptainer: { active: string | null; remotes: Record<string, { url: string; token: string | null }> },
    private readonly dockerAuths: Record<string, RegistryCredentials>,
  ) {}

  static async load(env: NodeJS.ProcessEnv = process.env): Promise<ClientConfig> {
    const dir = configDir(env);
    const parse = <T>(text: string | null, file: string, yaml = false): T => {
      if (text === null) return {} as T;
      try {
        return ((yaml ? YAML.parse(text) : JSON.parse(text)) ?? {}) as T;
      } catch {
        throw new ClientError('usage', `cannot parse ${file}`);
      }
    };
    const configFile = path.join(dir, 'config.yaml');
    const secretsFile = path.join(dir, 'credentials.json');
    const config = parse<ConfigFile>(await readText(configFile), configFile, true);
    const secrets = parse<SecretsFile>(await readText(secretsFile), secretsFile);
    return new ClientConfig(dir, config, secrets, await readApptainerRemotes(env), await readDockerAuths(env));
  }

  private async save(): Promise<void> {
    await writePrivate(path.join(this.dir, 'config.yaml'), YAML.stringify(this.config));
    await writePrivate(path.join(this.dir, 'credentials.json'), `${JSON.stringify(this.secrets, null, 2)}\n`);
  }

  remotes(): Remote[] {
    const out = new Map<string, Remote>();
    for (const [name, r] of Object.entries(this.apptainer.remotes)) out.set(name, { name, url: r.url, token: r.token, source: 'apptainer' });
    for (const [name, r] of Object.entries(this.config.remotes ?? {})) {
      out.set(name, { name, url: r.url, token: this.secrets.tokens?.[name] ?? null, source: 'shelf' });
    }
    return [...out.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  activeName(): string | null {
    const names = new Set(this.remotes().map((r) => r.name));
    const own = this.config.active;
    if (own && names.has(own)) return own;
    if (this.apptainer.active && names.has(this.apptainer.active)) return this.apptainer.active;
    return null;
  }

  remote(name: string): Remote {
    const found = this.remotes().find((r) => r.name === name);
    if (!found) throw new ClientError('usage', `unknown remote ${JSON.stringify(name)} (see shelf remote list)`);
    return found;
  }

  /** The named remote, else the active one. */
  pick(name?: string): Remote {
    if (name) return this.remote(name);
    const active = this.activeName();
    if (!active) throw new ClientError('usage', 'no remote in use: add one with shelf remote add NAME URL');
    return this.remote(active);
  }

  /** A remote whose URL has this host, for `library://HOST/…` references. */
  remoteForHost(host: string): Remote | null {
    return this.remotes().find((r) => new URL(r.url).host === host) ?? null;
  }

  async add(name: string, url: string): Promise<Remote> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new ClientError('usage', `${JSON.stringify(name)} is not a valid remote name`);
    if (this.config.remotes?.[name]) throw new ClientError('usage', `remote ${name} already exists`);
    this.config.remotes = { ...this.config.remotes, [name]: { url: normalizeUrl(url) } };
    this.config.active ??= name;
    await this.save();
    return this.remote(name);
  }

  async use(name: string): Promise<void> {
    this.remote(name);
    this.config.active = name;
    await this.save();
  }

  async remove(name: string): Promise<void> {
    if (!this.config.remotes?.[name]) {
      if (this.apptainer.remotes[name]) throw new ClientError('usage', `remote ${name} comes from Apptainer's remote.yaml; remove it with apptainer`);
      throw new ClientError('usage', `unknown remote ${JSON.stringify(name)} (see shelf remote list)`);
    }
    delete this.config.remotes[name];
    delete this.secrets.tokens?.[name];
    if (this.config.active === name) this.config.active = null;
    await this.save();
  }

  async setToken(name: string, token: string | null): Promise<void> {
    const remote = this.remote(name);
    if (remote.source === 'apptainer' && !this.config.remotes?.[name]) {
      // Logging in to an Apptainer remote copies it into Shelf's own config; remote.yaml stays as it is.
      this.config.remotes = { ...this.config.remotes, [name]: { url: remote.url } };
    }
    const tokens = { ...this.secrets.tokens };
    if (token === null) delete tokens[name];
    else tokens[name] = token;
    this.secrets.tokens = tokens;
    await this.save();
  }

  registryCredentials(host: string): RegistryCredentials | null {
    return this.secrets.registries?.[host] ?? this.dockerAuths[host] ?? null;
  }

  registryHosts(): string[] {
    return Object.keys(this.secrets.registries ?? {}).sort();
  }

  async setRegistryCredentials(host: string, creds: RegistryCredentials | null): Promise<void> {
    const registries = { ...this.secrets.registries };
    if (creds === null) delete registries[host];
    else registries[host] = creds;
    this.secrets.registries = registries;
    await this.save();
  }
}

async function readApptainerRemotes(env: NodeJS.ProcessEnv) {
  const result: { active: string | null; remotes: Record<string, { url: string; token: string | null }> } = { active: null, remotes: {} };
  const text = await readText(path.join(apptainerDir(env), 'remote.yaml'));
  if (text === null) return result;
  let doc: { Active?: string; Remotes?: Record<string, { URI?: string; Token?: string; Insecure?: boolean }> };
  try {
    doc = (YAML.parse(text) ?? {}) as typeof doc;
  } catch {
    return result;
  }
  for (const [name, r] of Object.entries(doc.Remotes ?? {})) {
    if (!r?.URI) continue;
    const uri = /^[a-z]+:\/\//i.test(r.URI) ? r.URI : `${r.Insecure ? 'http' : 'https'}://${r.URI}`;
    try {
      result.remotes[name] = { url: normalizeUrl(uri), token: r.Token || null };
    } catch {
      // an entry we cannot use
    }
  }
  result.active = doc.Active ?? null;
  return result;
}

/** `auths` of Apptainer's docker-config.json, then Docker's own config.json: host → username/password. */
async function readDockerAuths(env: NodeJS.ProcessEnv): Promise<Record<string, RegistryCredentials>> {
  const files = [
    path.join(apptainerDir(env), 'docker-config.json'),
    path.join(env.DOCKER_CONFIG ?? path.join(homedir(), '.docker'), 'config.json'),
  ];
  const out: Record<string, RegistryCredentials> = {};
  for (const file of files) {
    const text = await readText(file);
    if (text === null) continue;
    let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }> };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch {
      continue;
    }
    for (const [key, entry] of Object.entries(doc.auths ?? {})) {
      const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
      let creds: RegistryCredentials | null = null;
      if (entry.auth) {
        const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = plain.indexOf(':');
        if (colon > 0) creds = { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
      } else if (entry.username && entry.password) {
        creds = { username: entry.username, password: entry.password };
      }
      if (creds && !out[host]) out[host] = creds;
    }
  }
  return out;
}
