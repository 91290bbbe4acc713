import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { WebhookRow } from '../../meta/repos/webhooks.js';
import type { MetaStore } from '../../meta/store.js';
import { access } from '../accounts/access.js';
import type { Principal } from '../accounts/accounts.js';
import { RegistryError, notFound } from '../errors.js';
import { EVENT_TYPES, type DomainEvent, type EventType } from './events.js';
import { chainOf, type Namespaces } from '../namespaces/namespaces.js';
import { newId, newSecret, nowIso } from '../util.js';

export interface WebhookSettings {
  /** Seconds before the first retry; each next one waits twice as long (at most an hour). */
  retryBase: number;
  /** Attempts before a delivery is given up. */
  maxAttempts: number;
  /** Let hooks made by non-administrators target loopback and link-local addresses (tests). */
  allowLoopback: boolean;
}

export interface Webhook {
  id: string;
  /** The entity whose events it gets, or null for every event (administrators). */
  entity: string | null;
  url: string;
  events: EventType[];
  createdAt: string;
}

export interface Delivery {
  id: string;
  event: EventType;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: string;
  nextAttemptAt: string;
  deliveredAt: string | null;
  payload: unknown;
}

/** A delivery a node has leased, with what it needs to send it. */
export interface LeasedDelivery {
  id: string;
  url: string;
  secret: string;
  unrestricted: boolean;
  event: string;
  payload: string;
  attempts: number;
}

/** Hooks one entity may hold; one caller cannot make the server post without bound. */
export const MAX_HOOKS_PER_ENTITY = 20;
const LEASE_SECONDS = 60;
/** Matching hooks are re-read at most this often per node (a new hook applies within it). */
const HOOK_CACHE_MS = 2000;

/**
 * Webhooks: owners of an entity (and administrators, for all events) register URLs that get a
 * signed POST for each push, pull, delete, tag and signature-state change. Each event is written
 * to an outbox in the database, one row per hook, the moment it is told; any node then delivers
 * it, retrying with backoff, so deliveries survive restarts and are shared by several nodes.
 */
export class Webhooks {
  private cache: { at: number; hooks: Array<{ id: string; entity_id: string | null; events: EventType[] }> } | null = null;

  constructor(
    private readonly store: MetaStore,
    private readonly namespaces: Namespaces,
    readonly settings: WebhookSettings,
  ) {}

  async create(principal: Principal | null, input: { entity: string | null; url: string; events: string[] }): Promise<Webhook & { secret: string }> {
    access.requireUser(principal);
    let entityId: string | null = null;
    if (input.entity === null) access.assertAdmin(principal);
    else {
      const entity = await this.namespaces.getEntity(principal, input.entity);
      access.assertOwner(principal, chainOf(entity));
      entityId = entity.id;
      if ((await this.store.webhooks.countOfEntity(entityId)) >= MAX_HOOKS_PER_ENTITY) throw new RegistryError('too-many', `${input.entity} has ${MAX_HOOKS_PER_ENTITY} webhooks, the most an entity may have`);
    }
    const url = checkUrl(input.url);
    const events = checkEvents(input.events);
    if (!principal.isAdmin) await this.assertTarget(url, false);
    const row: WebhookRow = {
      id: newId(),
      entity_id: entityId,
      url: url.href,
      secret: newSecret(),
      events: JSON.stringify(events),
      created_by: principal.userId,
      unrestricted: principal.isAdmin ? 1 : 0,
      created_at: nowIso(),
    };
    await this.store.webhooks.insert(row);
    this.cache = null;
    return { id: row.id, entity: input.entity, url: row.url, events, createdAt: row.created_at, secret: row.secret };
  }

  /** Hooks the caller manages: of one entity it owns, or (administrators, no entity) all of them. */
  async list(principal: Principal | null, entityName: string | null): Promise<Webhook[]> {
    access.requireUser(principal);
    let entityId: string | undefined;
    if (entityName !== null) {
      const entity = await this.namespaces.getEntity(principal, entityName);
      access.assertOwner(principal, chainOf(entity));
      entityId = entity.id;
    } else {
      access.assertAdmin(principal);
    }
    const rows = await this.store.webhooks.list(entityId);
    return rows.map((r) => ({ id: r.id, entity: r.entity ?? null, url: r.url, events: JSON.parse(r.events) as EventType[], createdAt: r.created_at }));
  }

  async remove(principal: Principal | null, id: string): Promise<void> {
    await this.manageable(principal, id);
    await this.store.webhooks.remove(id);
    this.cache = null;
  }

  /** The delivery log of one hook, newest first. */
  async deliveries(principal: Principal | null, id: string, limit = 50): Promise<Delivery[]> {
    await this.manageable(principal, id);
    const rows = await this.store.webhooks.deliveries(id, Math.min(Math.max(1, limit), 500));
    return rows.map((r) => ({
      id: r.id,
      event: r.event as EventType,
      state: r.state as Delivery['state'],
      attempts: Number(r.attempts),
      lastStatus: r.last_status,
      lastError: r.last_error,
      createdAt: r.created_at,
      nextAttemptAt: r.next_attempt_at,
      deliveredAt: r.delivered_at,
      payload: JSON.parse(r.payload) as unknown,
    }));
  }

  /** The outbox side: one pending delivery per hook that wants the event. */
  async enqueue(event: DomainEvent): Promise<void> {
    const hooks = await this.hooks();
    if (!hooks.length) return;
    const place = await this.store.webhooks.placeOf(event.containerId);
    if (!place) return;
    const wanted = hooks.filter((h) => h.events.includes(event.type) && (h.entity_id === null || h.entity_id === place.entityId));
    if (!wanted.length) return;
    const now = nowIso();
    const body = { type: event.type, at: now, repository: `${place.entity}/${place.collection}/${place.container}`, entity: place.entity, collection: place.collection, container: place.container, ...event.data };
    await this.store.webhooks.enqueue(wanted.map((h) => ({ id: newId(), webhook_id: h.id, event: event.type, payload: JSON.stringify(body), state: 'pending', next_attempt_at: now, created_at: now })));
  }

  /** Leases up to `limit` due deliveries for this node; another node takes a lease only once it lapsed. */
  async lease(limit: number): Promise<LeasedDelivery[]> {
    const now = nowIso();
    const due = await this.store.webhooks.due(now, limit);
    const until = new Date(Date.now() + LEASE_SECONDS * 1000).toISOString();
    const mine: LeasedDelivery[] = [];
    for (const d of due) {
      if (await this.store.webhooks.takeLease(d.id, now, until)) mine.push({ id: d.id, url: d.url, secret: d.secret, unrestricted: d.unrestricted === 1, event: d.event, payload: d.payload, attempts: d.attempts });
    }
    return mine;
  }

  /** Records one attempt: delivered, retried later with backoff, or given up after `maxAttempts`. */
  async record(delivery: LeasedDelivery, outcome: { ok: boolean; status: number | null; error: string | null }): Promise<void> {
    const attempts = delivery.attempts + 1;
    const now = Date.now();
    const givenUp = !outcome.ok && attempts >= this.settings.maxAttempts;
    const wait = Math.min(3600, this.settings.retryBase * 2 ** (attempts - 1));
    await this.store.webhooks.recordAttempt(delivery.id, {
      state: outcome.ok ? 'delivered' : givenUp ? 'failed' : 'pending',
      attempts,
      last_status: outcome.status,
      last_error: outcome.error?.slice(0, 500) ?? null,
      next_attempt_at: new Date(now + (outcome.ok || givenUp ? 0 : wait * 1000)).toISOString(),
      delivered_at: outcome.ok ? new Date(now).toISOString() : null,
    });
  }

  /**
   * Hooks made by non-administrators never reach this machine's loopback or link-local
   * addresses (cloud metadata endpoints): checked when made and again on every delivery, as
   * a name may come to resolve elsewhere.
   */
  async assertTarget(url: URL, unrestricted: boolean): Promise<void> {
    if (unrestricted || this.settings.allowLoopback) return;
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const addresses = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
    if (!addresses.length) throw new RegistryError('invalid', `webhook host ${host} does not resolve`);
    const bad = addresses.find(isLocalAddress);
    if (bad) throw new RegistryError('invalid', `webhook target ${host} (${bad}) is a loopback or link-local address; only an administrator may post there`);
  }

  private async manageable(principal: Principal | null, id: string): Promise<void> {
    access.requireUser(principal);
    const row = await this.store.webhooks.entityOf(id);
    if (!row) throw notFound(`webhook ${id}`);
    if (row.entity_id === null) return access.assertAdmin(principal);
    const entity = await this.namespaces.getEntityById(principal, row.entity_id).catch(() => null);
    if (!entity) throw notFound(`webhook ${id}`);
    access.assertOwner(principal, chainOf(entity));
  }

  private async hooks(): Promise<Array<{ id: string; entity_id: string | null; events: EventType[] }>> {
    if (this.cache && Date.now() - this.cache.at < HOOK_CACHE_MS) return this.cache.hooks;
    const rows = await this.store.webhooks.all();
    const hooks = rows.map((r) => ({ id: r.id, entity_id: r.entity_id, events: JSON.parse(r.events) as EventType[] }));
    this.cache = { at: Date.now(), hooks };
    return hooks;
  }
}

function checkUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RegistryError('invalid', `not a URL: ${text.slice(0, 200)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RegistryError('invalid', 'a webhook URL is http:// or https://');
  if (url.username || url.password) throw new RegistryError('invalid', 'a webhook URL carries no credentials: the signature authenticates Shelf');
  if (url.href.length > 2000) throw new RegistryError('invalid', 'a webhook URL has at most 2000 characters');
  return url;
}

function checkEvents(events: string[]): EventType[] {
  if (!Array.isArray(events) || events.length === 0) throw new RegistryError('invalid', `name the events to send: ${EVENT_TYPES.join(', ')}`);
  const unknown = events.filter((e) => !EVENT_TYPES.includes(e as EventType));
  if (unknown.length) throw new RegistryError('invalid', `unknown event ${unknown.join(', ')}; events are ${EVENT_TYPES.join(', ')}`);
  return [...new Set(events as EventType[])];
}

/** Loopback (127/8, ::1), unspecified, and link-local (169.254/16, fe80::/10) addresses, IPv4-mapped included. */
export function isLocalAddress(address: string): boolean {
  const a = address.toLowerCase().replace(/^::ffff:(?=\d+\.)/, '');
  if (isIP(a) === 4) return a.startsWith('127.') || a.startsWith('169.254.') || a === '0.0.0.0';
  return a === '::1' || a === '::' || /^fe[89ab][0-9a-f]:/.test(a);
}
