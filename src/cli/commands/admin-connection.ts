import { ClientConfig } from '../../client/config.js';
import { CliError } from '../errors.js';

export interface AdminConn {
  url?: string;
  token?: string;
}

/**
 * The server and token `shelf admin` talks to: `--url`/`--token`, else `SHELF_URL`/`SHELF_TOKEN`,
 * else the remote stored by `shelf remote add`/`remote login` (the one whose host matches the
 * given URL, or the one in use).
 */
export async function adminConnection(flags: AdminConn, otherwise = ''): Promise<{ url: string; token: string }> {
  let url = flags.url || process.env.SHELF_URL || undefined;
  let token = flags.token || process.env.SHELF_TOKEN || undefined;
  if (!url || !token) {
    const config = await ClientConfig.load();
    const remote = url ? config.remoteForHost(hostOf(url)) : config.activeName() ? config.pick() : null;
    url ??= remote?.url;
    token ??= remote?.token ?? undefined;
  }
  if (!url || !token) {
    throw new CliError(`give --url URL and --token ADMIN_TOKEN (or SHELF_URL and SHELF_TOKEN, or log in with shelf remote login)${otherwise}`, 2);
  }
  return { url, token };
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    throw new CliError(`not a URL: ${url}`, 2);
  }
}
