/**
 * The outbox. Every state change others react to writes an `events` row in the same transaction,
 * plus a `events.dispatch` job; dispatch fans out one `hooks.run` job per subscribed handler, keyed
 * by (event id, handler id), so each handler runs at least once and can use the event id as its
 * idempotency key. A crash between commit and side effect loses nothing.
 */
import type { Db, Queryable } from './db.ts';
import { toDate } from './db.ts';
import type { Clock } from './clock.ts';
import type { Logger } from './log.ts';
import { publicId } from './ids.ts';
import type { JobQueue } from './jobs.ts';
import { afterCommit, type ChangeFeed } from './changes.ts';

/** The closed set of event names; the same names are the outgoing webhook event types. */
export const EVENT_TYPES = [
  'merchant.created',
  'merchant.updated',
  'api_key.created',
  'api_key.revoked',
  'link.created',
  'link.updated',
  'link.deleted',
  'link.viewed',
  'checkout.started',
  'payment.authorized',
  'payment.succeeded',
  'payment.failed',
  'payment.refunded',
  'link.limit_reached',
  'link.expired',
  'delivery.sent',
  'delivery.failed',
  'reminder.sent',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(name: string): name is EventType {
  return (EVENT_TYPES as readonly string[]).includes(name);
}

/** Subscribing to or emitting a name outside EVENT_TYPES: a programming error, caught at startup. */
export class UnknownEventTypeError extends TypeError {
  readonly code = 'unknown_event_type';
  constructor(readonly eventType: string) {
    super(`unknown event type "${eventType}"; known: ${EVENT_TYPES.join(', ')}`);
    this.name = 'UnknownEventTypeError';
  }
}

/**
 * A `hooks.run` job for a handler this process has not loaded (a plugin missing here but present
 * in another process, or one removed since). Retryable, so a process that has it can run it; if no
 * process ever does, the job ends `dead` with this error instead of being silently dropped.
 */
export class HandlerNotLoadedError extends Error {
  readonly code = 'handler_not_loaded';
  constructor(readonly subscriptionId: string) {
    super(`no handler ${subscriptionId} is loaded in this process`);
    this.name = 'HandlerNotLoadedError';
  }
}

/**
 * Payload of each event. Later features narrow their own entries; changes stay additive.
 * @example hooks.on('merchant.created', (e) => log.info(e.payload.handle))
 */
export interface EventPayloads {
  'merchant.created': { merchantId: string; handle: string; name: string };
  'merchant.updated': { merchantId: string; handle: string; changed: string[] };
  'api_key.created': { merchantId: string; apiKeyId: string; name: string };
  'api_key.revoked': { merchantId: string; apiKeyId: string };
  'link.created': { linkId: string; merchantId: string; name: string; path: string | null; type: string } & Record<string, unknown>;
  'link.updated': { linkId: string; merchantId: string; changed: string[] } & Record<string, unknown>;
  'link.deleted': { linkId: string; merchantId: string; path: string | null };
  /** A recorded pay-page view (emitted only while some handler subscribes: views are numerous). */
  'link.viewed': { linkId: string; viewId: string; viewedAt: string; browser: string | null; os: string | null; device: string | null; referer: string | null };
  'checkout.started': Record<string, unknown>;
  'payment.authorized': Record<string, unknown>;
  'payment.succeeded': Record<string, unknown>;
  'payment.failed': Record<string, unknown>;
  /**
   * A refund succeeded at the provider (one event per refund; partial refunds each send one).
   * @example { merchantId: 'mer_…', paymentId: 'pay_…', refundId: 're_…', linkId: 'lnk_…', amount: 1000,
   *   currency: 'EUR', amountRefunded: 1000, status: 'partially_refunded', reason: 'Cancelled class' }
   */
  'payment.refunded': {
    merchantId: string;
    paymentId: string;
    refundId: string;
    linkId: string | null;
    /** This refund, minor units. */
    amount: number;
    currency: string;
    /** All refunds of the payment so far, this one included. */
    amountRefunded: number;
    status: 'refunded' | 'partially_refunded';
    reason: string | null;
  };
  'link.limit_reached': Record<string, unknown>;
  'link.expired': Record<string, unknown>;
  'delivery.sent': Record<string, unknown>;
  'delivery.failed': Record<string, unknown>;
  'reminder.sent': Record<string, unknown>;
}

export interface PaylinkEvent<T extends EventType = EventType> {
  /** `evt_…`: stable across retries; use it as the idempotency key of any side effect. */
  id: string;
  type: T;
  payload: EventPayloads[T];
  createdAt: Date;
}

export type EventHandler<T extends EventType = EventType> = (event: PaylinkEvent<T>) => Promise<void> | void;

interface Subscription {
  id: string;
  type: EventType;
  handler: EventHandler<any>;
  /** Returns false when the owner (a plugin) is disabled; its queued runs are then skipped. */
  enabled: () => boolean;
}

interface EventRow {
  id: number;
  public_id: string;
  type: EventType;
  merchant_id: number | null;
  payload: string;
  created_at: unknown;
}

function fromRow(r: EventRow): PaylinkEvent & { merchantId: number | null } {
  return { id: r.public_id, type: r.type, payload: JSON.parse(r.payload), createdAt: toDate(r.created_at), merchantId: r.merchant_id };
}

/** An event as committed listeners see it (in this process, right after its transaction commits). */
export interface CommittedEvent {
  type: EventType;
  payload: Record<string, unknown>;
  merchantKey: number | null;
}

export class EventBus {
  private readonly subs = new Map<string, Subscription>();
  private readonly committed = new Set<(e: CommittedEvent) => void>();

  constructor(private readonly deps: { db: Db; clock: Clock; jobs: JobQueue; log: Logger; changes?: ChangeFeed }) {
    deps.jobs.define<{ eventId: string }>('events.dispatch', (p) => this.dispatch(p.eventId));
    deps.jobs.define<{ eventId: string; subscriptionId: string }>('hooks.run', (p) => this.runHandler(p.eventId, p.subscriptionId));
  }

  /**
   * Subscribes a handler. `id` must be stable across restarts (it keys the per-handler job), e.g.
   * `plugin:<plugin-id>:<event>:<n>`.
   */
  subscribe<T extends EventType>(type: T, id: string, handler: EventHandler<T>, enabled: () => boolean = () => true): void {
    if (!isEventType(type)) throw new UnknownEventTypeError(String(type));
    if (this.subs.has(id)) throw new Error(`a handler with id ${id} is already subscribed`);
    this.subs.set(id, { id, type, handler, enabled });
  }

  /** True when some handler listens for `type` (so a high-volume event can skip the outbox when nobody does). */
  hasSubscribers(type: EventType): boolean {
    for (const s of this.subs.values()) if (s.type === type) return true;
    return false;
  }

  /**
   * Calls `fn` with each event emitted in this process once its transaction commits: a best-effort,
   * in-process signal (live dashboards). Handlers that must not miss an event subscribe instead.
   */
  onCommitted(fn: (e: CommittedEvent) => void): () => void {
    this.committed.add(fn);
    return () => this.committed.delete(fn);
  }

  /**
   * Records an event in the caller's transaction. `quiet` skips the change signal that drops cached
   * pay pages: for events that change nothing a pay page shows (a view).
   */
  async emit<T extends EventType>(trx: Queryable, type: T, payload: EventPayloads[T], merchantId: number | null = null, opts: { quiet?: boolean } = {}): Promise<string> {
    if (!isEventType(type)) throw new UnknownEventTypeError(String(type));
    const id = publicId('evt');
    await trx('events').insert({ public_id: id, type, merchant_id: merchantId, payload: JSON.stringify(payload), created_at: this.deps.clock.now() });
    await this.deps.jobs.enqueue(trx, 'events.dispatch', { eventId: id }, { uniqueKey: `dispatch:${id}` });
    if (!opts.quiet) this.deps.changes?.afterCommit(trx);
    if (this.committed.size && !opts.quiet) {
      const e: CommittedEvent = { type, payload: payload as Record<string, unknown>, merchantKey: merchantId };
      afterCommit(trx, () => {
        for (const fn of this.committed) fn(e);
      });
    }
    return id;
  }

  async get(eventId: string): Promise<(PaylinkEvent & { merchantId: number | null }) | null> {
    const row = (await this.deps.db('events').where({ public_id: eventId }).first()) as EventRow | undefined;
    return row ? fromRow(row) : null;
  }

  /** Newest first, for the dashboard's activity. */
  async listForMerchant(merchantId: number, limit = 50): Promise<PaylinkEvent[]> {
    const rows = (await this.deps.db('events').where({ merchant_id: merchantId }).orderBy('id', 'desc').limit(limit)) as EventRow[];
    return rows.map(fromRow);
  }

  private async dispatch(eventId: string): Promise<void> {
    const event = await this.get(eventId);
    if (!event) return;
    const targets = [...this.subs.values()].filter((s) => s.type === event.type);
    if (!targets.length) return;
    await this.deps.db.transaction(async (trx) => {
      for (const s of targets) {
        await this.deps.jobs.enqueue(trx, 'hooks.run', { eventId, subscriptionId: s.id }, { uniqueKey: `hook:${eventId}:${s.id}` });
      }
    });
  }

  private async runHandler(eventId: string, subscriptionId: string): Promise<void> {
    const sub = this.subs.get(subscriptionId);
    if (!sub) throw new HandlerNotLoadedError(subscriptionId);
    if (!sub.enabled()) {
      // Its owner (a plugin) is disabled: the run is skipped for good, not postponed.
      this.deps.log.info('skipping hook of a disabled handler', { eventId, subscriptionId });
      return;
    }
    const event = await this.get(eventId);
    if (!event) return;
    const { merchantId: _internal, ...publicEvent } = event;
    await sub.handler(publicEvent);
  }
}
