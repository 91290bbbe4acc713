import { ClientError } from './ggcr.js';

/**
 * `apptainer remote status` / `remote get-login-password` (and SingularityCE's): the remote's
 * `config.prod.json`, `token-status`, each service's `version`, and `v1/rbac/users/current`.
 */
export interface ServiceConfig {
  libraryAPI: { uri: string; registryUri?: string };
  keystoreAPI: { uri: string };
  tokenAPI: { uri: string };
}

const bearer = (token: string | null): Record<string, string> => ({ authorization: token ? `Bearer ${token}` : 'Bearer' });

export async function serviceConfig(base: string): Promise<ServiceConfig> {
  const res = await fetch(`${base}/assets/config/config.prod.json`);
  if (res.status !== 200) throw new ClientError(`config.prod.json: status ${res.status}`);
  return (await res.json()) as ServiceConfig;
}

interface UserData {
  username?: string;
  email?: string;
  realname?: string;
  oidc_user_meta?: { secret?: string };
}

/** `getUserData`: an error for any status but 200, the body decoded as it is (no envelope). */
async function userData(libraryUri: string, token: string | null): Promise<UserData> {
  const res = await fetch(`${libraryUri}/v1/rbac/users/current`, { headers: bearer(token) });
  const body = (await res.json().catch(() => ({}))) as UserData;
  if (res.status === 401) throw new ClientError('must be logged in to retrieve user data');
  if (res.status === 404) throw new ClientError('user endpoint not found');
  if (res.status !== 200) throw new ClientError(`status is not ok: ${res.status}`);
  return body;
}

export interface RemoteStatus {
  tokenValid: boolean;
  versions: Record<string, string>;
  /** "Logged in as …"; null when the user endpoint failed (status ignores the error). */
  loggedInAs: string | null;
}

export async function remoteStatus(base: string, token: string | null): Promise<RemoteStatus> {
  const config = await serviceConfig(base);
  const status = await fetch(`${config.tokenAPI.uri}/v1/token-status`, { headers: bearer(token) });
  await status.arrayBuffer();
  const versions: Record<string, string> = {};
  for (const [service, { uri }] of Object.entries(config)) {
    const res = await fetch(`${uri}/version`);
    const body = (await res.json().catch(() => ({}))) as { data?: { version?: string } };
    versions[service] = body.data?.version ?? '';
  }
  const user = await userData(config.libraryAPI.uri, token).catch(() => null);
  return { tokenValid: status.status === 200, versions, loggedInAs: user?.username ?? null };
}

/** `remote get-login-password`: the OCI registry password of the logged-in user. */
export async function getLoginPassword(base: string, token: string | null): Promise<string> {
  const config = await serviceConfig(base);
  const user = await userData(config.libraryAPI.uri, token);
  if (!user.oidc_user_meta?.secret) throw new ClientError('no token was received from service');
  return user.oidc_user_meta.secret;
}

/** SingularityCE's `libraryRegistry`: the registry behind the Library and the credentials for it. */
export async function libraryRegistry(base: string, token: string | null): Promise<{ registry: string; basic: { username: string; password: string } | null }> {
  const config = await serviceConfig(base);
  if (!config.libraryAPI.registryUri) throw new ClientError('library does not provide an OCI registry');
  const registry = new URL(config.libraryAPI.registryUri);
  if (!token) return { registry: registry.origin, basic: null };
  const user = await userData(config.libraryAPI.uri, token);
  return { registry: registry.origin, basic: { username: user.username ?? '', password: user.oidc_user_meta?.secret ?? '' } };
}
