import type { Kysely } from 'kysely';
import type { Database, Row, WebhookDeliveriesTable, WebhooksTable } from '../schema.js';

export type WebhookRow = WebhooksTable;
export type DeliveryRow = Row<WebhookDeliveriesTable>;

/** A due delivery with what sending it needs of its hook. */
export interface DueDelivery {
  id: string;
  url: string;
  secret: string;
  unrestricted: number;
  event: string;
  payload: string;
  attempts: number;
}

/** The outcome of one attempt, as stored. */
export interface AttemptRecord {
  state: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  next_attempt_at: string;
  delivered_at: string | null;
}

/** Webhooks and their outbox of deliveries (leased by one node at a time, retried). */
export class WebhooksRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async countOfEntity(entityId: string): Promise<number> {
    const held = await this.db.selectFrom('webhooks').select((eb) => eb.fn.countAll<number>().as('n')).where('entity_id', '=', entityId).executeTakeFirstOrThrow();
    return Number(held.n);
  }

  async insert(hook: WebhookRow): Promise<void> {
    await this.db.insertInto('webhooks').values(hook).execute();
  }

  /** Hooks with their entity's name, oldest first; `entityId` undefined: every hook. */
  async list(entityId?: string): Promise<Array<{ id: string; url: string; events: string; created_at: string; entity: string | null }>> {
    let q = this.db
      .selectFrom('webhooks')
      .leftJoin('entities', 'entities.id', 'webhooks.entity_id')
      .select(['webhooks.id', 'webhooks.url', 'webhooks.events', 'webhooks.created_at', 'entities.name as entity']);
    if (entityId !== undefined) q = q.where('webhooks.entity_id', '=', entityId);
    return q.orderBy('webhooks.created_at').orderBy('webhooks.id').execute();
  }

  /** The entity of a hook (null: a global hook), or undefined when there is no such hook. */
  async entityOf(hookId: string): Promise<{ entity_id: string | null } | undefined> {
    return this.db.selectFrom('webhooks').select(['entity_id']).where('id', '=', hookId).executeTakeFirst();
  }

  /** Every hook's entity and events (what enqueueing matches against). */
  async all(): Promise<Array<{ id: string; entity_id: string | null; events: string }>> {
    return this.db.selectFrom('webhooks').select(['id', 'entity_id', 'events']).execute();
  }

  /** Deletes a hook and its deliveries. */
  async remove(hookId: string): Promise<void> {
    await this.db.deleteFrom('webhook_deliveries').where('webhook_id', '=', hookId).execute();
    await this.db.deleteFrom('webhooks').where('id', '=', hookId).execute();
  }

  /** The entity (ID, name), collection and container names of a container, for event bodies. */
  async placeOf(containerId: string): Promise<{ entityId: string; entity: string; collection: string; container: string } | undefined> {
    return this.db
      .selectFrom('containers')
      .innerJoin('collections', 'collections.id', 'containers.collection_id')
      .innerJoin('entities', 'entities.id', 'collections.entity_id')
      .select(['entities.id as entityId', 'entities.name as entity', 'collections.name as collection', 'containers.name as container'])
      .where('containers.id', '=', containerId)
      .executeTakeFirst();
  }

  // --- the outbox -----------------------------------------------------------------------------

  async enqueue(deliveries: Array<Pick<WebhookDeliveriesTable, 'id' | 'webhook_id' | 'event' | 'payload' | 'state' | 'next_attempt_at' | 'created_at'>>): Promise<void> {
    if (deliveries.length === 0) return;
    await this.db.insertInto('webhook_deliveries').values(deliveries).execute();
  }

  /** The delivery log of one hook, newest first. */
  async deliveries(hookId: string, limit: number): Promise<DeliveryRow[]> {
    return this.db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', hookId).orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
  }

  /** Pending deliveries due at `now` whose lease (if any) lapsed, soonest first. */
  async due(now: string, limit: number): Promise<DueDelivery[]> {
    const rows = await this.db
      .selectFrom('webhook_deliveries')
      .innerJoin('webhooks', 'webhooks.id', 'webhook_deliveries.webhook_id')
      .select(['webhook_deliveries.id', 'webhooks.url', 'webhooks.secret', 'webhooks.unrestricted', 'webhook_deliveries.event', 'webhook_deliveries.payload', 'webhook_deliveries.attempts'])
      .where('webhook_deliveries.state', '=', 'pending')
      .where('webhook_deliveries.next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('webhook_deliveries.lease_until', 'is', null), eb('webhook_deliveries.lease_until', '<', now)]))
      .orderBy('webhook_deliveries.next_attempt_at')
      .limit(limit)
      .execute();
    return rows.map((d) => ({ ...d, attempts: Number(d.attempts) }));
  }

  /** Leases a delivery until `until` if it is still pending and unleased at `now`; false when another node has it. */
  async takeLease(deliveryId: string, now: string, until: string): Promise<boolean> {
    const taken = await this.db
      .updateTable('webhook_deliveries')
      .set({ lease_until: until })
      .where('id', '=', deliveryId)
      .where('state', '=', 'pending')
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .executeTakeFirst();
    return Number(taken.numUpdatedRows) === 1;
  }

  /** Stores an attempt's outcome and releases the lease. */
  async recordAttempt(deliveryId: string, attempt: AttemptRecord): Promise<void> {
    await this.db
      .updateTable('webhook_deliveries')
      .set({ ...attempt, lease_until: null })
      .where('id', '=', deliveryId)
      .execute();
  }
}
