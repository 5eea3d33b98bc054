/**
 * What an outgoing webhook's `data` is for each event type: the same JSON the API returns for the
 * object the event is about, built through the owning features' services and JSON functions.
 *
 * Table-driven: an event type is offered to endpoints exactly when it has an entry in WEBHOOK_EVENTS
 * (adding a type is one line naming its object and where its id is). Types without one (views,
 * merchant and API-key housekeeping, anything a later change adds before it gets an entry) are not
 * offered, and an event of such a type is simply not sent.
 */
import type { EventPayloads, EventType } from '../../core/events.ts';
import { NotFoundError } from '../../core/errors.ts';
import { paymentJson, refundJson, type PaymentQueries, type RefundService } from '../checkout/index.ts';
import { deliveryJson, type DeliveryService } from '../deliveries/index.ts';
import { afterPaymentJson, type ActionService } from '../actions/index.ts';
import { planJson, type ReminderService } from '../reminders/index.ts';
import type { LinkService } from '../links/index.ts';
import type { RequestService } from '../requests/index.ts';
import type { Merchant } from '../merchants/index.ts';
import { subscriptionJson, type SubscriptionService } from '../subscriptions/index.ts';

/** The objects a webhook's `data` can be. */
type ObjectKind = 'payment' | 'payment_outcome' | 'link' | 'link_deleted' | 'delivery' | 'reminder_plan' | 'payment_request' | 'subscription';

interface EventEntry {
  object: ObjectKind;
  /** The object's public id in the event's payload. */
  id: (payload: any) => string;
}

const payment: EventEntry = { object: 'payment', id: (p: EventPayloads['payment.succeeded']) => p.paymentId };
/** A payment whose received amount did not match (crypto): the payment, plus what arrived. */
const paymentOutcome: EventEntry = { object: 'payment_outcome', id: (p: EventPayloads['payment.underpaid']) => p.paymentId };
const link: EventEntry = { object: 'link', id: (p: { linkId: string }) => p.linkId };
const delivery: EventEntry = { object: 'delivery', id: (p: EventPayloads['delivery.sent']) => p.deliveryId };
const subscription: EventEntry = { object: 'subscription', id: (p: EventPayloads['subscription.created']) => p.subscriptionId };
const paymentRequest: EventEntry = { object: 'payment_request', id: (p: { requestId: string }) => p.requestId };

/** The event types endpoints can subscribe to, and the object each one carries. */
export const WEBHOOK_EVENTS: Partial<Record<EventType, EventEntry>> = {
  'checkout.started': payment,
  'payment.authorized': payment,
  'payment.succeeded': payment,
  'payment.failed': payment,
  'payment.refunded': payment,
  'payment.disputed': payment,
  'payment.underpaid': paymentOutcome,
  'payment.overpaid': paymentOutcome,
  'payment.paid_late': paymentOutcome,
  'link.created': link,
  'link.updated': link,
  'link.limit_reached': link,
  'link.expired': link,
  'link.deleted': { object: 'link_deleted', id: (p: EventPayloads['link.deleted']) => p.linkId },
  'delivery.sent': delivery,
  'delivery.failed': delivery,
  'reminder.sent': { object: 'reminder_plan', id: (p: EventPayloads['reminder.sent']) => p.planId },
  'payment_request.created': paymentRequest,
  'payment_request.sent': paymentRequest,
  'payment_request.paid': paymentRequest,
  'payment_request.expired': paymentRequest,
  'payment_request.cancelled': paymentRequest,
  // The old request, whose `refreshed_to` names the new one.
  'payment_request.refreshed': paymentRequest,
  'subscription.created': subscription,
  'subscription.renewed': subscription,
  'subscription.canceled': subscription,
};

/** The offered types, in catalogue order. */
export function webhookEventTypes(): EventType[] {
  return (Object.keys(WEBHOOK_EVENTS) as EventType[]).sort();
}

export function isWebhookEventType(type: string): type is EventType {
  return Object.prototype.hasOwnProperty.call(WEBHOOK_EVENTS, type);
}

export interface DataSources {
  payments: Pick<PaymentQueries, 'get'>;
  refunds: Pick<RefundService, 'list'>;
  links: Pick<LinkService, 'get' | 'json'>;
  actions: Pick<ActionService, 'forLink'>;
  deliveries: Pick<DeliveryService, 'get' | 'forPlans'>;
  reminders: Pick<ReminderService, 'forLink'>;
  requests: Pick<RequestService, 'get' | 'json'>;
  /** Optional: without it, subscription events carry only `{ id, object }`. */
  subscriptions?: Pick<SubscriptionService, 'getView'>;
  /** The public ids of the API keys that made links. */
  apiKeys: { refsByKeys(keys: number[]): Promise<Map<number, { id: string }>> };
}

/**
 * Builds `data` for an event of an offered type. An object deleted since the event (a link) reads as
 * `{ id, object, deleted: true }`, never an error that would stop the event's other endpoints.
 */
export function createDataBuilder(src: DataSources) {
  const builders: Record<ObjectKind, (merchant: Merchant, id: string, payload: any) => Promise<unknown>> = {
    // A payment with its refunds, as GET /payments/:id answers.
    async payment(merchant, id) {
      const p = await src.payments.get(merchant.key, id);
      const refunds = await src.refunds.list(p.key);
      return { ...paymentJson(p), refunds: refunds.map((r) => refundJson(r, p.id)) };
    },
    // The payment, plus what arrived: `amount_received` (minor units) and the transactions (`received_tx_hashes`).
    async payment_outcome(merchant, id, payload: EventPayloads['payment.underpaid']) {
      const p = (await builders.payment(merchant, id, payload)) as Record<string, unknown>;
      return { ...p, amount_received: payload.amountReceived, received_tx_hashes: payload.txHashes };
    },
    // A link as GET /links/:id answers.
    async link(merchant, id) {
      const l = await src.links.get(merchant, id);
      const key = l.apiKeyKey === null ? null : (await src.apiKeys.refsByKeys([l.apiKeyKey])).get(l.apiKeyKey) ?? null;
      return { ...src.links.json(merchant, l), api_key_id: key?.id ?? null, after_payment: afterPaymentJson(await src.actions.forLink(l.key)) };
    },
    async link_deleted(_merchant, id) {
      return { id, object: 'link', deleted: true };
    },
    async delivery(merchant, id) {
      return deliveryJson(await src.deliveries.get(merchant.key, id));
    },
    // A payment request as GET /payment_requests/:id answers (metadata included).
    async payment_request(merchant, id) {
      return src.requests.json(await src.requests.get(merchant.key, id));
    },
    // A subscription as GET /subscriptions/:id answers.
    async subscription(merchant, id) {
      if (!src.subscriptions) return { id, object: 'subscription' };
      return subscriptionJson(await src.subscriptions.getView(merchant.key, id));
    },
    // A reminder plan as GET /links/:id/reminders lists it.
    async reminder_plan(merchant, id, payload: EventPayloads['reminder.sent']) {
      const l = await src.links.get(merchant, payload.linkId);
      const plan = (await src.reminders.forLink(l.key)).find((p) => p.id === id);
      if (!plan) throw new NotFoundError('No such reminder plan.');
      const sent = (await src.deliveries.forPlans([plan.key])).reverse();
      return planJson(plan, sent, merchant.timezone);
    },
  };
  return async function dataFor(merchant: Merchant, type: EventType, payload: unknown): Promise<unknown> {
    const entry = WEBHOOK_EVENTS[type];
    if (!entry) return null;
    const id = entry.id(payload);
    try {
      return await builders[entry.object](merchant, id, payload);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      return { id, object: entry.object === 'link_deleted' ? 'link' : entry.object === 'payment_outcome' ? 'payment' : entry.object, deleted: true };
    }
  };
}

export type DataBuilder = ReturnType<typeof createDataBuilder>;
