import { readFileSync } from 'node:fs';
import { Client, Filter, InvalidCredentialsError, SizeLimitExceededError } from 'ldapts';
import type { DirectoryUser, PasswordDirectory } from '../registry/accounts/accounts.js';
import { RegistryError } from '../registry/errors.js';

export interface LdapSettings {
  /** `ldap://HOST[:PORT]` or `ldaps://HOST[:PORT]`. */
  url: string;
  /** Where users are searched. */
  userBase: string;
  /** `{username}` is replaced by the escaped sign-in name. */
  userFilter: string;
  /** Service account for the search; anonymous search when absent. */
  bindDn?: string | undefined;
  bindPassword?: string | undefined;
  /** Upgrade `ldap://` with StartTLS before sending any password. */
  startTls: boolean;
  /** PEM file with the CA that signed the directory's certificate. */
  caFile?: string | undefined;
  /** Users whose entry matches this filter (with `{username}`) become administrators. */
  adminFilter?: string | undefined;
  timeoutMs: number;
}

/**
 * Sign-in against an LDAP directory by search-then-bind: find the user's entry with a service
 * (or anonymous) bind, then bind as that entry with the offered password. No password is kept.
 */
export class LdapDirectory implements PasswordDirectory {
  readonly name = 'ldap';
  private readonly tlsOptions;

  constructor(private readonly settings: LdapSettings) {
    this.tlsOptions = settings.caFile ? { ca: readFileSync(settings.caFile) } : {};
  }

  async verify(username: string, password: string): Promise<DirectoryUser | null> {
    // An empty password makes an LDAP "unauthenticated bind", which servers answer with success.
    if (password === '') return null;
    const client = new Client({
      url: this.settings.url,
      timeout: this.settings.timeoutMs,
      connectTimeout: this.settings.timeoutMs,
      tlsOptions: this.tlsOptions,
    });
    try {
      if (this.settings.startTls) await client.startTLS(this.tlsOptions);
      if (this.settings.bindDn) await client.bind(this.settings.bindDn, this.settings.bindPassword ?? '');
      const filter = this.filterFor(this.settings.userFilter, username);
      const dn = await this.findUniqueDn(client, filter);
      if (!dn) return null;
      try {
        await client.bind(dn, password);
      } catch (err) {
        if (err instanceof InvalidCredentialsError) return null;
        throw err;
      }
      return { dn, isAdmin: await this.isAdmin(client, username) };
    } catch (err) {
      throw new RegistryError('unavailable', `the LDAP directory could not be asked: ${(err as Error).message}`);
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  /** The one entry the filter matches; none or several (an ambiguous name) → null. */
  private async findUniqueDn(client: Client, filter: string): Promise<string | null> {
    try {
      const { searchEntries } = await client.search(this.settings.userBase, { scope: 'sub', filter, attributes: ['dn'], sizeLimit: 2 });
      return searchEntries.length === 1 ? searchEntries[0]!.dn : null;
    } catch (err) {
      if (err instanceof SizeLimitExceededError) return null;
      throw err;
    }
  }

  private async isAdmin(client: Client, username: string): Promise<boolean> {
    if (!this.settings.adminFilter) return false;
    // With a service account the question is asked as it; without one, as the signed-in user.
    if (this.settings.bindDn) await client.bind(this.settings.bindDn, this.settings.bindPassword ?? '');
    const filter = this.filterFor(this.settings.adminFilter, username);
    const { searchEntries } = await client.search(this.settings.userBase, { scope: 'sub', filter, attributes: ['dn'], sizeLimit: 1 });
    return searchEntries.length > 0;
  }

  private filterFor(template: string, username: string): string {
    return template.replaceAll('{username}', Filter.escape(username));
  }
}
