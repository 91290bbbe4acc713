import * as client from 'openid-client';

export interface OidcSettings {
  issuer: string;
  clientId: string;
  /** Absent: a public client (PKCE only). */
  clientSecret?: string | undefined;
  scopes: string[];
  usernameClaim: string;
  groupsClaim: string;
  /** Follow the groups claim (memberships in Shelf groups). */
  syncGroups: boolean;
  adminGroup?: string | undefined;
  adminClaim?: string | undefined;
  timeoutMs: number;
}

/** What Shelf keeps between the redirect to the provider and the way back (in a signed cookie). */
export interface PendingSignIn {
  state: string;
  nonce: string;
  verifier: string;
  redirectUri: string;
  /** The UI page to show after signing in. */
  next: string;
}

/** Who the provider says signed in, mapped to Shelf's terms. */
export interface OidcIdentity {
  subject: string;
  username: string;
  /** null: no admin rule is configured, so Shelf's own flag stands. */
  isAdmin: boolean | null;
  /** null: memberships are not managed from the provider. */
  groups: string[] | null;
}

/** A sign-in that did not work, with a message fit for the sign-in page (never a stack trace). */
export class OidcError extends Error {
  override name = 'OidcError';
  constructor(
    message: string,
    /** The user name the provider gave, when it got that far (for the audit log). */
    readonly username: string | null = null,
  ) {
    super(message);
  }
}

/** Provider metadata is read again after this long (keys are refreshed by openid-client on their own). */
const DISCOVERY_TTL_MS = 3600_000;

/**
 * The relying party of an OpenID provider: authorization code flow with PKCE, state and nonce.
 * The provider is discovered on first use and the result cached; a provider that is down when
 * Shelf starts only makes OIDC sign-ins fail until it is back.
 */
export class OidcSignIn {
  private discovered: { config: Promise<client.Configuration>; at: number } | null = null;

  constructor(readonly settings: OidcSettings) {}

  private configuration(): Promise<client.Configuration> {
    if (this.discovered && Date.now() - this.discovered.at < DISCOVERY_TTL_MS) return this.discovered.config;
    const { issuer, clientId, clientSecret, timeoutMs } = this.settings;
    const config = client
      .discovery(new URL(issuer), clientId, clientSecret ? { client_secret: clientSecret } : undefined, clientSecret ? client.ClientSecretBasic(clientSecret) : client.None(), {
        timeout: Math.ceil(timeoutMs / 1000),
        // An http:// issuer is the operator's explicit choice (a provider on loopback or in tests).
        execute: new URL(issuer).protocol === 'http:' ? [client.allowInsecureRequests] : [],
      })
      .catch((err: unknown) => {
        this.discovered = null;
        throw new OidcError(`the OpenID provider ${issuer} could not be reached: ${describe(err)}`);
      });
    this.discovered = { config, at: Date.now() };
    return config;
  }

  /** Where to send the browser, and what to keep until it comes back. */
  async start(redirectUri: string, next: string): Promise<{ url: string; pending: PendingSignIn }> {
    const config = await this.configuration();
    const pending: PendingSignIn = { state: client.randomState(), nonce: client.randomNonce(), verifier: client.randomPKCECodeVerifier(), redirectUri, next };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.settings.scopes.join(' '),
      response_type: 'code',
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
    });
    return { url: url.href, pending };
  }

  /**
   * The way back: checks state, exchanges the code with the PKCE verifier, validates the ID
   * token (signature, issuer, audience, nonce, expiry) and maps its claims, completed by the
   * UserInfo endpoint where the provider keeps them there.
   */
  async finish(callbackUrl: URL, pending: PendingSignIn): Promise<OidcIdentity> {
    const params = callbackUrl.searchParams;
    if (params.get('error')) {
      const why = params.get('error_description');
      throw new OidcError(`the OpenID provider refused the sign-in: ${params.get('error')}${why ? ` (${why})` : ''}`);
    }
    if (params.get('state') !== pending.state) throw new OidcError('the sign-in could not be verified (its state does not match): please start it again');
    const config = await this.configuration();
    let tokens;
    try {
      tokens = await client.authorizationCodeGrant(config, callbackUrl, { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce, idTokenExpected: true });
    } catch (err) {
      if (err instanceof client.ResponseBodyError || err instanceof client.AuthorizationResponseError) {
        throw new OidcError(`the OpenID provider did not accept the sign-in: ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`);
      }
      if (err instanceof client.ClientError) throw new OidcError(`the OpenID provider's answer was not valid: ${err.message}`);
      throw new OidcError(`the OpenID provider could not be reached: ${describe(err)}`);
    }
    const idClaims = tokens.claims();
    if (!idClaims) throw new OidcError('the OpenID provider sent no ID token');
    let claims: Record<string, unknown> = { ...idClaims };
    if (config.serverMetadata().userinfo_endpoint && (claims[this.settings.usernameClaim] === undefined || this.wantsMoreClaims(claims))) {
      try {
        const info = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub);
        claims = { ...info, ...idClaims };
      } catch (err) {
        throw new OidcError(`the OpenID provider's UserInfo could not be read: ${describe(err)}`);
      }
    }
    return this.identityOf(claims);
  }

  /** Claims the mapping needs that the ID token lacks. */
  private wantsMoreClaims(claims: Record<string, unknown>): boolean {
    const { groupsClaim, syncGroups, adminGroup, adminClaim } = this.settings;
    return ((syncGroups || !!adminGroup) && claims[groupsClaim] === undefined) || (!!adminClaim && claims[adminClaim] === undefined);
  }

  identityOf(claims: Record<string, unknown>): OidcIdentity {
    const { usernameClaim, groupsClaim, syncGroups, adminGroup, adminClaim } = this.settings;
    const username = claims[usernameClaim];
    if (typeof username !== 'string' || username === '') throw new OidcError(`the OpenID provider gave no ${usernameClaim} claim to take the user name from`);
    const raw = claims[groupsClaim];
    const groups = Array.isArray(raw) ? raw.filter((g): g is string => typeof g === 'string') : typeof raw === 'string' ? raw.split(/[\s,]+/).filter(Boolean) : [];
    let isAdmin: boolean | null = null;
    if (adminGroup || adminClaim) {
      const flag = adminClaim ? claims[adminClaim] : undefined;
      isAdmin = (!!adminGroup && groups.includes(adminGroup)) || flag === true || flag === 'true';
    }
    return { subject: String(claims.sub), username, isAdmin, groups: syncGroups ? groups : null };
  }
}

/** An error's message with its cause (fetch failures say "fetch failed" and hide the reason there). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause : null;
  const reason = cause ? `${cause.message}${'code' in cause && cause.code ? ` (${String(cause.code)})` : ''}` : '';
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'it did not answer in time';
  return reason && !err.message.includes(reason) ? `${err.message}: ${reason}` : err.message;
}
