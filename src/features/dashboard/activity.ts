/**
 * Events as a person reads them: "Ada paid €25.00 for Espresso workshop", "You signed up",
 * "Payment request INV-7 expired" — one sentence per event type (EVENT_TYPES), with a link to what it
 * is about. The names the sentences use (customers, links, payers) are read for a whole list at
 * once, through their features' capabilities: a few queries per page, never one per event.
 */
import type { EventPayloads, EventType, PaylinkEvent } from '../../core/events.ts';
import { formatMoney } from '../../core/money.ts';
import type { CustomerService } from '../customers/index.ts';
import type { LinkService } from '../links/index.ts';
import type { PaymentQueries } from '../checkout/index.ts';

/** What the sentences may name, by public id; whatever is missing is said without a name. */
export interface ActivityNames {
  customers: Map<string, string>;
  links: Map<string, { name: string; kind: 'smart' | 'request'; deleted: boolean }>;
  /** The payer of a payment (its customer, else what the checkout collected) and the link's name. */
  payments: Map<string, { payer: string | null; linkName: string | null }>;
  /** A channel's label ("Email", "SMS") by id. */
  channelLabel: (id: string) => string;
}

export interface ActivityItem {
  id: string;
  type: EventType;
  text: string;
  /** The page the event is about (a payment, a link, a request, a customer, settings), or null. */
  href: string | null;
  createdAt: Date;
}

export const NO_NAMES: ActivityNames = { customers: new Map(), links: new Map(), payments: new Map(), channelLabel: (id) => id };

type Sentence<T extends EventType> = (p: EventPayloads[T], n: ActivityNames) => { text: string; href: string | null };

const quoted = (s: string) => `“${s}”`;
const money = (amount: number, currency: string) => formatMoney(amount, currency);
const words = (code: string) => code.replace(/[_.]+/g, ' ').trim();
const list = (items: string[]) => (items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`);

/** Settings by the names the merchant sees in Settings. */
const SETTING_NAMES: Record<string, string> = {
  name: 'business name',
  handle: 'web address',
  currency: 'currency',
  timezone: 'time zone',
  brand_color: 'brand colour',
  logo_url: 'logo',
  button_style: 'button style',
  button_label: 'button label',
  locale: 'date format',
};
/** Link fields by the names of the link form. */
const LINK_FIELDS: Record<string, string> = {
  name: 'name',
  path: 'address',
  description: 'description',
  internal_notes: 'notes',
  amount: 'amount',
  currency: 'currency',
  payment_limit: 'payment limit',
  branding: 'branding',
  active: 'status',
  redirect_url: 'page after payment',
  redirect_target: 'page after payment',
  show_remaining: '“places left”',
  tags: 'tags',
};
/** Why a payment failed, in words (the provider's decline codes read as they are, underscores gone). */
const FAILURES: Record<string, string> = {
  card_declined: 'the card was declined',
  insufficient_funds: 'insufficient funds',
  expired: 'the checkout expired unpaid',
  provider_unavailable: 'the payment provider was unavailable',
  capture_failed: 'taking the money failed',
  limit_reached: 'the link had reached its payment limit',
  link_inactive: 'the link was no longer active',
};
const MESSAGE_KINDS: Record<string, string> = { initial: 'The link', reminder: 'A reminder', expiry: 'The expiry reminder', receipt: 'The receipt' };
const REQUEST_SOURCES: Record<string, string> = { api: ' through the API', dashboard: '', text_to_pay: ' by Text-to-Pay', import: ' from a CSV import' };

const linkHref = (id: string | null, n: ActivityNames) => (id && n.links.get(id)?.kind !== 'request' && !n.links.get(id)?.deleted ? `/app/links/${id}` : null);
/** “Espresso workshop”, or a fallback when the link is unknown. */
const linkName = (id: string | null, n: ActivityNames, fallback = 'a link') => {
  const l = id ? n.links.get(id) : undefined;
  return l ? quoted(l.name) : fallback;
};
const customerName = (id: string | null, n: ActivityNames, fallback = 'a customer') => (id ? (n.customers.get(id) ?? fallback) : fallback);
const payerOf = (p: { paymentId: string; customerId?: string | null }, n: ActivityNames) =>
  (p.customerId ? n.customers.get(p.customerId) : undefined) ?? n.payments.get(p.paymentId)?.payer ?? 'A customer';
/** What a payment was for: “Espresso workshop”, a payment request, or the open-amount page. */
const paidFor = (p: { paymentId: string; linkId: string | null }, n: ActivityNames) => {
  if (!p.linkId) return 'on your payment page';
  const l = n.links.get(p.linkId);
  const name = l?.name ?? n.payments.get(p.paymentId)?.linkName ?? null;
  if (l?.kind === 'request') return name ? `for ${quoted(name)}` : 'for a payment request';
  return name ? `for ${quoted(name)}` : 'for a link';
};
const paymentHref = (id: string) => `/app/payments/${id}`;
/** "Payment request INV-7", else by its link's name, else "A payment request". */
const requestName = (p: { reference: string | null; linkId?: string }, n: ActivityNames) => {
  if (p.reference) return `Payment request ${p.reference}`;
  const l = p.linkId ? n.links.get(p.linkId) : undefined;
  return l ? `Payment request ${quoted(l.name)}` : 'A payment request';
};
const requestHref = (id: string) => `/app/requests/${id}`;
const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/**
 * One sentence per event type. Typed as a complete record, so a new type in EVENT_TYPES does not
 * compile without its sentence (and test/activity.test.ts fails at run time too).
 */
export const SENTENCES: { [T in EventType]: Sentence<T> } = {
  'merchant.created': () => ({ text: 'You signed up.', href: '/app/settings' }),
  'merchant.updated': (p) => {
    const changed = [...new Set(p.changed.map((c) => SETTING_NAMES[c] ?? words(c)))];
    return { text: changed.length ? `You changed your ${list(changed)}.` : 'You saved your settings.', href: '/app/settings' };
  },
  'api_key.created': (p) => ({ text: `You created the API key ${quoted(p.name)}.`, href: '/app/settings#api-keys' }),
  'api_key.revoked': () => ({ text: 'You revoked an API key.', href: '/app/settings#api-keys' }),
  'link.created': (p, n) =>
    p.kind === 'request'
      ? { text: `A payment link for ${p.amount === null ? 'a payment request' : money(p.amount, p.currency)} was made for a payment request.`, href: null }
      : { text: `You created the link ${quoted(p.name)}${p.amount === null ? '' : ` for ${money(p.amount, p.currency)}`}.`, href: linkHref(p.linkId, n) ?? `/app/links/${p.linkId}` },
  'link.updated': (p, n) => {
    const changed = [...new Set(p.changed.map((c) => LINK_FIELDS[c] ?? words(c)))];
    return { text: `You changed ${linkName(p.linkId, n)}${changed.length ? ` (${list(changed)})` : ''}.`, href: linkHref(p.linkId, n) };
  },
  'link.deleted': (p, n) => ({ text: `You deleted ${linkName(p.linkId, n, p.path ? `the link /${p.path}` : 'a link')}.`, href: null }),
  'link.viewed': (p, n) => {
    const on = [p.browser, p.os].filter(Boolean).join(' on ');
    return { text: `Someone opened ${linkName(p.linkId, n)}${on ? ` (${on})` : ''}.`, href: linkHref(p.linkId, n) };
  },
  'checkout.started': (p, n) => ({ text: `${payerOf(p, n)} started paying ${money(p.amount, p.currency)} ${paidFor(p, n)}.`, href: paymentHref(p.paymentId) }),
  'payment.authorized': (p, n) => ({ text: `${payerOf(p, n)}’s payment of ${money(p.amount, p.currency)} ${paidFor(p, n)} was authorised.`, href: paymentHref(p.paymentId) }),
  'payment.succeeded': (p, n) => ({ text: `${payerOf(p, n)} paid ${money(p.amount, p.currency)} ${paidFor(p, n)}.`, href: paymentHref(p.paymentId) }),
  'payment.failed': (p, n) => ({
    text: `${payerOf(p, n)}’s payment of ${money(p.amount, p.currency)} ${paidFor(p, n)} did not go through: ${FAILURES[p.reason] ?? words(p.reason)}.`,
    href: paymentHref(p.paymentId),
  }),
  'payment.refunded': (p, n) => ({
    text: `${money(p.amount, p.currency)} went back to ${payerOf(p, n)}${p.status === 'refunded' ? ' (refunded in full)' : ''}${p.reason ? `: ${p.reason}` : ''}.`,
    href: paymentHref(p.paymentId),
  }),
  'payment.disputed': (p, n) => ({ text: `${payerOf(p, n)} disputed a payment of ${money(p.amount, p.currency)} with their bank (${words(p.status)}).`, href: paymentHref(p.paymentId) }),
  'payment.underpaid': (p, n) => ({ text: `${payerOf(p, n)} sent ${money(p.amountReceived, p.currency)} of ${money(p.amount, p.currency)} ${paidFor(p, n)} before the checkout ended (underpaid): accept it or settle the rest with them.`, href: paymentHref(p.paymentId) }),
  'payment.overpaid': (p, n) => ({ text: `${payerOf(p, n)} sent ${money(p.amountReceived, p.currency)} for ${money(p.amount, p.currency)} ${paidFor(p, n)} (overpaid by ${money(p.amountReceived - p.amount, p.currency)}).`, href: paymentHref(p.paymentId) }),
  'payment.paid_late': (p, n) => ({ text: `${payerOf(p, n)} sent ${money(p.amountReceived, p.currency)} ${paidFor(p, n)} after the checkout ended (paid late): decide whether to keep it.`, href: paymentHref(p.paymentId) }),
  'link.limit_reached': (p, n) => ({ text: `${capital(linkName(p.linkId, n, 'A link'))} sold out: all ${p.limit} payment${p.limit === 1 ? ' is' : 's are'} in.`, href: linkHref(p.linkId, n) }),
  'link.expired': (p, n) => ({
    text: n.links.get(p.linkId)?.kind === 'request' ? `The payment link for ${customerName(p.customerId, n)} expired unpaid.` : `${capital(linkName(p.linkId, n, 'A link'))} expired unpaid.`,
    href: linkHref(p.linkId, n) ?? (p.customerId ? `/app/customers/${p.customerId}` : null),
  }),
  'delivery.sent': (p, n) => ({
    text: `${MESSAGE_KINDS[p.kind] ?? 'A message'} went to ${customerName(p.customerId, n)} by ${n.channelLabel(p.channel)}.`,
    href: p.customerId ? `/app/customers/${p.customerId}` : linkHref(p.linkId, n),
  }),
  'delivery.failed': (p, n) => ({
    text: `${MESSAGE_KINDS[p.kind] ?? 'A message'} to ${customerName(p.customerId, n)} by ${n.channelLabel(p.channel)} could not be sent: ${p.error}`.replace(/([^.!?])$/, '$1.'),
    href: p.customerId ? `/app/customers/${p.customerId}` : linkHref(p.linkId, n),
  }),
  'reminder.sent': (p, n) => ({ text: `Reminder ${p.number} of ${p.max} about ${linkName(p.linkId, n)} went to ${customerName(p.customerId, n)}.`, href: `/app/customers/${p.customerId}` }),
  'payment_request.created': (p, n) => ({ text: `${requestName(p, n)} for ${money(p.amount, p.currency)} was created${REQUEST_SOURCES[p.source] ?? ''}.`, href: requestHref(p.requestId) }),
  'payment_request.sent': (p, n) => ({ text: `${requestName(p, n)} was sent by ${n.channelLabel(p.channel)}.`, href: requestHref(p.requestId) }),
  'payment_request.paid': (p, n) => ({ text: `${requestName(p, n)} was paid.`, href: requestHref(p.requestId) }),
  'payment_request.expired': (p, n) => ({ text: `${requestName(p, n)} expired.`, href: requestHref(p.requestId) }),
  'payment_request.cancelled': (p, n) => ({ text: `${requestName(p, n)} was cancelled.`, href: requestHref(p.requestId) }),
  'payment_request.refreshed': (p) => ({ text: `A customer asked for a new link: ${p.reference ? `payment request ${p.reference}` : 'a new payment request'} replaces the expired one.`, href: requestHref(p.newRequestId) }),
  'subscription.created': (p, n) => ({ text: `${capital(customerName(p.customerId, n))} subscribed ${p.linkId ? `through ${linkName(p.linkId, n)}` : 'to a plan'} for ${money(p.amount, p.currency)} per period.`, href: '/app/subscriptions' }),
  'subscription.renewed': (p, n) => ({ text: `${capital(customerName(p.customerId, n))}’s subscription renewed: ${money(p.amount, p.currency)}.`, href: p.paymentId ? paymentHref(p.paymentId) : '/app/subscriptions' }),
  'subscription.canceled': (p, n) => ({ text: `${capital(customerName(p.customerId, n))}’s subscription was canceled${p.canceledBy === 'merchant' ? ' by you' : p.canceledBy === 'customer' ? ' by the customer' : ' at the payment provider'}.`, href: '/app/subscriptions' }),
};

/** One event in words, with the page it is about. */
export function describeEvent(e: Pick<PaylinkEvent, 'id' | 'type' | 'payload' | 'createdAt'>, names: ActivityNames = NO_NAMES): ActivityItem {
  const sentence = SENTENCES[e.type] as Sentence<EventType> | undefined;
  const said = sentence ? sentence(e.payload as never, names) : { text: capital(`${words(e.type)}.`), href: null };
  return { id: e.id, type: e.type, text: said.text, href: said.href, createdAt: e.createdAt };
}

/** What describeEvents reads names with (each a batch capability of its feature). */
export interface ActivityDeps {
  customers: Pick<CustomerService, 'namesByIds'>;
  links: Pick<LinkService, 'namesByIds'>;
  payments: Pick<PaymentQueries, 'byIds'>;
  channelLabel: (id: string) => string;
}

/** Events in words: the customers, links and payments they name read once for the whole list (three queries). */
export async function describeEvents(deps: ActivityDeps, merchantKey: number, events: PaylinkEvent[]): Promise<ActivityItem[]> {
  const ids = (key: string) => events.map((e) => (e.payload as Record<string, unknown>)[key]).filter((v): v is string => typeof v === 'string');
  const [customers, links, payments] = await Promise.all([
    deps.customers.namesByIds(merchantKey, ids('customerId')),
    deps.links.namesByIds(merchantKey, ids('linkId')),
    deps.payments.byIds(merchantKey, ids('paymentId')),
  ]);
  const names: ActivityNames = {
    customers,
    links,
    payments: new Map([...payments].map(([id, p]) => [id, { payer: p.customer?.name ?? p.customer?.email ?? null, linkName: p.linkName }])),
    channelLabel: deps.channelLabel,
  };
  return events.map((e) => describeEvent(e, names));
}
