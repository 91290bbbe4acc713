import type { FastifyInstance, FastifyRequest } from 'fastify';
import * as openpgp from 'openpgp';
import type { Registry } from '../../registry/registry.js';
import { RegistryError } from '../../registry/errors.js';
import { KEYS_PER_UPLOAD, type StoredKey } from '../../registry/keys/keystore.js';
import { authenticate } from '../auth.js';
import { PayloadTooLarge, readBody } from '../body.js';

export interface HkpRoutesOptions {
  registry: Registry;
  anonymousAdd: boolean;
}

type Req = FastifyRequest<{ Querystring: Record<string, string> }>;

/** %-escapes what the machine-readable index format may not hold raw (Apptainer unescapes it as a query value). */
const escapeField = (s: string) => s.replace(/[%:+\r\n]|[^\x20-\x7e]/gu, (c) => encodeURIComponent(c));

function indexLines(keys: StoredKey[]): string {
  const lines = [`info:1:${keys.length}`];
  for (const k of keys) {
    const flags = `${k.revoked ? 'r' : ''}${k.expiresAt !== null && k.expiresAt * 1000 < Date.now() ? 'e' : ''}`;
    lines.push(`pub:${k.fingerprint}:${k.algorithm}:${k.bits ?? ''}:${k.createdAt}:${k.expiresAt ?? ''}:${flags}`);
    for (const uid of k.userIds) lines.push(`uid:${escapeField(uid)}:${k.createdAt}::`);
  }
  return `${lines.join('\n')}\n`;
}

/** The HKP keyserver (`/pks/lookup`, `/pks/add`) that `apptainer key` and `apptainer verify` use. */
export async function hkpRoutes(app: FastifyInstance, opts: HkpRoutesOptions): Promise<void> {
  const { registry } = opts;

  app.get('/pks/lookup', async (req: Req, reply) => {
    const op = req.query.op ?? 'get';
    const search = req.query.search ?? '';
    if (!search) throw new RegistryError('invalid', 'search is required');
    if (!['get', 'index', 'vindex'].includes(op)) throw new RegistryError('invalid', `unsupported op ${op}`);
    const keys = await registry.keystore.search(search, req.query.exact === 'on', Math.min(Number(req.query['x-pagesize']) || 256, 1024));
    if (keys.length === 0) throw new RegistryError('not-found', 'no matching keys found');
    if (op === 'get') {
      // All matches in one armor block: the client reads only the first block.
      const packets = openpgp.armor(openpgp.enums.armor.publicKey, Buffer.concat(keys.map((k) => Buffer.from(k.key.write()))));
      return reply.type('application/pgp-keys').send(packets);
    }
    return reply.type('text/plain').send(indexLines(keys));
  });

  app.delete('/api/keys/:fingerprint', async (req: FastifyRequest<{ Params: { fingerprint: string } }>, reply) => {
    await registry.keystore.remove(await authenticate(registry, req), req.params.fingerprint);
    return reply.send({ data: { removed: req.params.fingerprint.toUpperCase() } });
  });

  app.post('/pks/add', async (req: FastifyRequest, reply) => {
    // Form encoding at most triples the key text.
    const body = await readBody(req, registry.keystore.maxKeyBytes * KEYS_PER_UPLOAD * 3).catch((err: unknown) => {
      throw err instanceof PayloadTooLarge ? new RegistryError('too-large', 'key upload too large') : err;
    });
    const keytext = new URLSearchParams(body.toString('utf8')).get('keytext');
    if (!keytext) throw new RegistryError('invalid', 'form field keytext is required');
    const added = await registry.keystore.add(await authenticate(registry, req), keytext, { allowAnonymous: opts.anonymousAdd });
    return reply.send({ data: { fingerprints: added } });
  });
}
