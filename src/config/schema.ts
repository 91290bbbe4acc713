import { isIP } from 'node:net';
import { z } from 'zod';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'must be HOST:PORT, e.g. 127.0.0.1:8080');

const urlString = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL');

/** Byte sizes accept plain numbers or strings such as `64MiB`, `10GiB`, `500MB`. */
export const byteSize = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const parsed = parseByteSize(v);
  if (parsed === null) {
    ctx.addIssue({ code: 'custom', message: `not a byte size: "${v}" (use e.g. 1048576, 64MiB, 10GiB)` });
    return z.NEVER;
  }
  return parsed;
});

/** Durations accept seconds as a number or strings such as `90s`, `30m`, `1h`, `2d`. */
export const duration = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+)\s*(s|m|h|d)?\s*$/.exec(v);
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `not a duration: "${v}" (use seconds, or e.g. 90s, 30m, 1h, 2d)` });
    return z.NEVER;
  }
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] ?? 's']!;
});

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

export function parseByteSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) return null;
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return null;
  const value = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(value) ? value : null;
}

/** An address or CIDR range (IPv4 or IPv6), or one of proxy-addr's names: loopback, linklocal, uniquelocal. */
const proxyRange = z.string().refine((s) => {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(s)) return true;
  const [address, bits, ...rest] = s.split('/');
  const family = isIP(address ?? '');
  if (!family || rest.length) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}, 'must be an address or CIDR range, e.g. 10.0.0.0/8, ::1, or loopback');

export const configSchema = z
  .object({
    listen: hostPort.default('127.0.0.1:8080'),
    data: z.string().min(1).default('./data'),
    /** `sqlite:PATH` / a plain path, or `postgres://…`; default: SQLite in the data folder. */
    db: z.string().min(1).optional(),
    /**
     * Where blob bytes live: `file:///path` or `s3://BUCKET[/PREFIX]?endpoint=URL&region=R&path-style=true…`;
     * default: the data folder.
     */
    blobs: z.string().min(1).optional(),
    /** Answer downloads from an object store with a redirect to a presigned URL (false: proxy the bytes). */
    blobsRedirect: z.boolean().default(true),
    /** The object store endpoint clients can reach, put into presigned URLs (also `?public-endpoint=`). */
    blobsPublicEndpoint: urlString.optional(),
    /**
     * Who sends the bytes of a download from the filesystem store: `none` (Shelf), or `x-accel`
     * (Shelf authorises and counts, then answers `X-Accel-Redirect: blobsOffloadPrefix<path>` with
     * an empty body, and nginx in front sends the file; docs/operations.md). Needs that nginx.
     */
    blobsOffload: z.enum(['none', 'x-accel']).default('none'),
    /** The nginx `internal` location whose `alias` is the data folder's `blobs/` folder. */
    blobsOffloadPrefix: z
      .string()
      .regex(/^\/[A-Za-z0-9._~/-]*\/$/, 'must be a URL path that starts and ends with /, e.g. /_shelf_blobs/')
      .default('/_shelf_blobs/'),
    /** The URL clients reach this server at; defaults to http://LISTEN. */
    publicUrl: urlString.optional(),
    /**
     * Reverse proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges). Empty, the
     * default: nobody's, so rate limits, connection caps and the audit log see the TCP peer.
     */
    trustProxy: z.array(proxyRange).default([]),
    /** Seconds a stop (SIGTERM/SIGINT) lets running requests finish before their connections are cut. */
    shutdownTimeout: duration.default(10),
    /** Webhooks (README "Webhooks"): how deliveries are retried and where hooks may post. */
    webhooks: z
      .object({
        /** Wait before the first retry; each next one waits twice as long (at most an hour). */
        retryBase: duration.default(10),
        /** Attempts before a delivery is given up (marked failed in the delivery log). */
        maxAttempts: z.number().int().positive().max(30).default(8),
        /** Time a receiver has to answer. */
        timeout: duration.default(10),
        /** How often each node looks for deliveries due. */
        poll: duration.default(1),
        /** Let hooks made by non-administrators post to loopback and link-local addresses. */
        allowLoopback: z.boolean().default(false),
      })
      .prefault({}),
    limits: z
      .object({
        /** Seconds a transfer may go without a byte moving (a stalled download or upload); 0 = never. */
        idleTimeout: duration.default(60),
        /** Open connections per client address (trusted proxies exempt); a job array behind one NAT needs many. */
        connectionsPerAddress: z.number().int().positive().default(256),
        /** Open connections in all. */
        maxConnections: z.number().int().positive().default(10_000),
        /** Upload sessions one user may hold open at once, Library and OCI together. */
        uploadsPerUser: z.number().int().positive().default(64),
        /** An OCI upload session no chunk reached for this long is dropped with its bytes. */
        uploadIdleTtl: duration.default(86_400),
      })
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .prefault({}),
    bootstrapToken: z.string().min(8, 'must be at least 8 characters').optional(),
    /**
     * The key that signs download links and registry tokens (every node of a cluster needs the
     * same); without it, the key file `secret.key` in the data folder, made on first start.
     */
    secret: z.string().min(32, 'must be at least 32 characters').optional(),
    /** Keys still accepted after a rotation of `secret`, comma-separated. */
    secretPrevious: z.string().optional(),
    library: z
      .object({
        /** Part size offered to clients for v2 multipart uploads. */
        multipartPartSize: byteSize.default(64 * 2 ** 20),
        /** How long a capability URL for an upload or a download stays valid, in seconds. */
        uploadUrlTtl: z.number().int().positive().default(3600),
        downloadUrlTtl: z.number().int().positive().default(3600),
        /** Quota given to a new entity, in bytes; 0 = unlimited. */
        defaultQuota: byteSize.default(0),
      })
      .prefault({}),
    auth: z
      .object({
        /** Sign-in and token requests per minute and client address. */
        rateLimit: z.number().int().positive().default(600),
      })
      .prefault({}),
    keyserver: z
      .object({
        /** Whether keys may be added without signing in. */
        anonymousAdd: z.boolean().default(false),
        /** Largest armored size of one key, as sent and after every merge. */
        maxKeyBytes: z.number().int().min(4096).default(64 * 1024),
      })
      .prefault({}),
    /** Sign-in against an LDAP directory, beside local accounts; off when absent. */
    ldap: z
      .object({
        url: z.string().regex(/^ldaps?:\/\/[^/\s]+\/?$/, 'must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]'),
        /** Where user entries are searched, e.g. `ou=people,dc=example,dc=org`. */
        userBase: z.string().min(1),
        /** `{username}` is replaced by the escaped sign-in name. */
        userFilter: z.string().includes('{username}', { message: 'must contain {username}' }).default('(uid={username})'),
        /** Service account for the search; anonymous when absent. */
        bindDn: z.string().min(1).optional(),
        bindPassword: z.string().optional(),
        startTls: z.boolean().default(false),
        caFile: z.string().min(1).optional(),
        /** Entries matching this filter (with `{username}`) sign in as administrators. */
        adminFilter: z.string().includes('{username}', { message: 'must contain {username}' }).optional(),
        /** Seconds to wait for the directory. */
        timeout: z.number().positive().default(10),
      })
      .strict()
      .optional(),
    /**
     * Sign-in through an OpenID Connect provider (authorization code with PKCE) for the web UI,
     * beside local and LDAP accounts; off when absent.
     */
    oidc: z
      .object({
        /** The provider's issuer URL; its discovery document is read on first use. */
        issuer: urlString,
        clientId: z.string().min(1),
        /** Absent: a public client (PKCE only, no client authentication). */
        clientSecret: z.string().min(1).optional(),
        /** Registered at the provider; default: PUBLIC_URL/api/oidc/callback (else from the request). */
        redirectUrl: urlString.refine((s) => !URL.canParse(s) || new URL(s).pathname.endsWith('/api/oidc/callback'), 'must end in /api/oidc/callback, where Shelf takes the way back').optional(),
        /** Scopes asked for (space- or comma-separated); `openid` is always among them. */
        scopes: z
          .union([z.array(z.string()), z.string()])
          .default('openid profile email')
          .transform((v) => {
            const list = (typeof v === 'string' ? v.split(/[\s,]+/) : v).map((s) => s.trim()).filter(Boolean);
            return [...new Set(['openid', ...list])];
          }),
        /** The button's label: "Sign in with NAME". */
        name: z.string().min(1).max(60).default('OpenID Connect'),
        /** The claim that becomes the Shelf user name. */
        usernameClaim: z.string().min(1).default('preferred_username'),
        /** The claim listing the user's groups (names of Shelf groups). */
        groupsClaim: z.string().min(1).default('groups'),
        /** Follow the groups claim: memberships in Shelf groups named there are added, others removed. */
        syncGroups: z.boolean().default(true),
        /** The role a membership made from the groups claim gets. */
        groupRole: z.enum(['reader', 'writer']).default('writer'),
        /** Members of this provider group (in the groups claim) are administrators. */
        adminGroup: z.string().min(1).optional(),
        /** A claim that, when true, makes the user an administrator. */
        adminClaim: z.string().min(1).optional(),
        /** Seconds to wait for the provider. */
        timeout: z.number().positive().default(10),
      })
      .strict()
      .optional(),
    gc: z
      .object({
        /** Nothing linked, written or expired more recently than this is collected. */
        grace: duration.default(3600),
        /** Seconds between scheduled collections; 0 = none (run `shelf admin gc`). */
        interval: duration.default(3600),
      })
      .prefault({}),
    /** HTTPS with these PEM files (HTTP/2 for clients that offer it); reloaded on SIGHUP. */
    tls: z
      .object({
        cert: z.string().min(1),
        key: z.string().min(1),
      })
      .strict()
      .optional(),
    metrics: z
      .object({
        /** When set, `/metrics` answers only `Authorization: Bearer TOKEN`. */
        token: z.string().min(16, 'must be at least 16 characters').optional(),
        /** Quota use is recounted for a scrape at most this often (it reads every entity's blobs). */
        quotaInterval: duration.default(60),
      })
      .strict()
      .prefault({}),
    /** The remote builder (`singularity build --remote`, `shelf build --remote`). */
    build: z
      .object({
        /** Serve the builder protocol and advertise builderAPI in config.prod.json. */
        enabled: z.boolean().default(true),
        /** Run a builder inside `shelf serve` (the embedded default); false: only `shelf builder` processes build. */
        worker: z.boolean().default(true),
        /** Architectures builders serve (submits for others are refused), e.g. `amd64,arm64`. */
        arches: z
          .union([z.array(z.string()), z.string()])
          .transform((v) => (typeof v === 'string' ? v.split(',') : v).map((a) => a.trim()).filter(Boolean))
          .optional(),
        /** Builds one builder runs at once. */
        concurrency: z.number().int().positive().default(1),
        /** Work folder of builds (never inside the data folder); default: a shelf-builds folder in the system temp. */
        workDir: z.string().min(1).optional(),
        /** First host id of the builders' ranges in /etc/subuid and /etc/subgid (65536 per concurrent build). */
        idRangeStart: z.number().int().positive().default(524288),
        /** Wall-clock limit of one build. */
        timeout: duration.default(3600),
        /** Pings on a build's log WebSocket while the build prints nothing (proxies drop idle sockets). */
        wsPing: duration.default(20),
        /** A running build whose builder sent no heartbeat for this long is failed ("builder lost"); on PostgreSQL at least 10 s (pg-boss's floor). */
        staleAfter: duration.default(60),
        /** PostgreSQL only: the schema of the build queue's tables (pg-boss); never one of Shelf's. */
        queueSchema: z
          .string()
          .regex(/^[a-z_][a-z0-9_]{0,50}$/, 'a lower-case SQL identifier')
          .refine((s) => s !== 'public', 'not the schema of Shelf\'s own tables')
          .default('pgboss'),
        /** Let %post reach the network (through slirp4netns, never the host's loopback). */
        network: z.boolean().default(false),
        /** Memory, CPU and process limits per build, in a cgroup (v2, or the v1 controllers) where the builder may make one. */
        memory: byteSize.optional(),
        cpus: z.number().positive().optional(),
        pids: z.number().int().positive().optional(),
        /** How long an image built without a libraryRef (`USER/remote-builds/rb-ID`) is kept. */
        ephemeralTtl: duration.default(86400),
        /** How long an uploaded build context is kept. */
        contextTtl: duration.default(86400),
        maxContextSize: byteSize.default(2 ** 30),
        /** Largest base image or layer a build downloads. */
        maxDownload: byteSize.default(8 * 2 ** 30),
      })
      .prefault({}),
    oci: z
      .object({
        /** The challenge on a 401: `bearer` (token endpoint, the default) or `basic` (username + API token). */
        challenge: z.enum(['bearer', 'basic']).default('bearer'),
      })
      .prefault({}),
    /** Pull-through cache (README "Mirroring and the pull-through cache"); `upstreams` also as JSON in SHELF_CACHE_UPSTREAMS. */
    cache: z
      .object({
        upstreams: z.preprocess(
          (v) => {
            if (typeof v !== 'string') return v;
            try {
              return JSON.parse(v) as unknown;
            } catch {
              return v;
            }
          },
          z
            .array(
              z
                .object({
                  namespace: z.string().regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)?\/?$/, 'must be ENTITY/ or ENTITY/COLLECTION/'),
                  url: z.string().regex(/^(library|oras|docker):\/\/[^/\s]+(\/[a-z0-9._/-]*)?$/, 'must be library://HOST[/PATH], oras://HOST[/PATH] or docker://HOST[/PATH]'),
                  ttl: duration.default(600),
                  timeout: duration.default(30),
                  username: z.string().optional(),
                  password: z.string().optional(),
                  keyserver: urlString.optional(),
                })
                .strict(),
            )
            .default([]),
        ),
        /** Bytes of cached images kept (least recently used evicted first); 0 = no limit. */
        quota: byteSize.default(0),
      })
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.blobsOffload === 'x-accel' && c.blobs !== undefined && !c.blobs.startsWith('file:')) {
      ctx.addIssue({ code: 'custom', path: ['blobsOffload'], message: 'x-accel needs the filesystem blob store (an object store redirects downloads itself: blobsRedirect)' });
    }
  });

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
