/** What happened to content, as webhooks announce it. */
export type EventType = 'push' | 'pull' | 'delete' | 'tag' | 'signature';
export const EVENT_TYPES: readonly EventType[] = ['push', 'pull', 'delete', 'tag', 'signature'];

/** One change, told after it committed; `data` says what changed in the terms of its protocol. */
export interface DomainEvent {
  type: EventType;
  containerId: string;
  data: Record<string, unknown>;
}

/**
 * Announces domain events to whoever listens (webhooks). Emitting never waits and never fails
 * the operation that emitted: a listener's failure is its own.
 */
export class DomainEvents {
  private readonly listeners: Array<(event: DomainEvent) => Promise<void>> = [];
  onListenerError: (err: unknown) => void = () => {};

  listen(listener: (event: DomainEvent) => Promise<void>): void {
    this.listeners.push(listener);
  }

  emit(event: DomainEvent): void {
    for (const listener of this.listeners) listener(event).catch((err: unknown) => this.onListenerError(err));
  }
}
