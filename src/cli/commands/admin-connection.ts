import type { Command } from 'commander';
import { ClientConfig } from '../../client/config.js';
import { ShelfApi, ShelfApiError } from '../../client/shelf-api.js';
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

/** Runs an admin action against a running server, turning its errors into one line. */
export function action<A extends unknown[]>(fn: (api: ShelfApi, ...args: A) => Promise<void>) {
  return async (...args: [...A, AdminConn, Command]) => {
    const cmd = args[args.length - 1] as Command;
    const { url, token } = await adminConnection(cmd.optsWithGlobals() as AdminConn);
    try {
      // Commander passes the positional arguments, then the command's options, then the command.
      await fn(new ShelfApi(url, token), ...(args.slice(0, -1) as unknown as A));
    } catch (err) {
      if (err instanceof ShelfApiError) throw new CliError(err.message, err.status === 0 ? 3 : 1);
      throw err;
    }
  };
}
