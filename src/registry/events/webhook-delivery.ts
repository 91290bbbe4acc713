import { createHmac } from 'node:crypto';
import type { LeasedDelivery, Webhooks } from './webhooks.js';

export interface DispatchSettings {
  /** Milliseconds between looks at the outbox. */
  pollMs: number;
  /** Seconds a receiver has to answer. */
  timeout: number;
  /** Deliveries one node sends at once. */
  concurrency: number;
}

/** `sha256=` and the hex HMAC-SHA256 of the exact body with the hook's secret (the `X-Shelf-Signature` header). */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * Sends what the outbox holds: every node runs one, each delivery leased by one node at a time.
 * A 2xx answer delivers; anything else (another status, no answer in time, a refused target)
 * is retried with backoff until the hook's attempts run out.
 */
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  onError: (err: unknown) => void = () => {};

  constructor(
    private readonly hooks: Webhooks,
    private readonly settings: DispatchSettings,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One pass over the outbox (tests and the timer). */
  async runOnce(): Promise<number> {
    const leased = await this.hooks.lease(this.settings.concurrency);
    await Promise.all(leased.map((d) => this.deliver(d)));
    return leased.length;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.runOnce()
        .then(() => undefined, (err: unknown) => this.onError(err))
        .finally(() => {
          this.running = null;
          this.schedule();
        });
    }, this.settings.pollMs);
    this.timer.unref();
  }

  private async deliver(d: LeasedDelivery): Promise<void> {
    let outcome: { ok: boolean; status: number | null; error: string | null };
    try {
      const url = new URL(d.url);
      await this.hooks.assertTarget(url, d.unrestricted);
      const res = await fetch(url, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.timeout(this.settings.timeout * 1000),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Shelf-Webhook',
          'x-shelf-event': d.event,
          'x-shelf-delivery': d.id,
          'x-shelf-signature': signBody(d.secret, d.payload),
        },
        body: d.payload,
      });
      await res.body?.cancel().catch(() => undefined);
      outcome = res.status >= 200 && res.status < 300 ? { ok: true, status: res.status, error: null } : { ok: false, status: res.status, error: `the receiver answered ${res.status}` };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const reason = e.name === 'TimeoutError' ? `no answer within ${this.settings.timeout} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
      outcome = { ok: false, status: null, error: reason };
    }
    await this.hooks.record(d, outcome);
  }
}
