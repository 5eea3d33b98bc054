/**
 * Payment requests (API.md "Payment requests"): one payment asked of one customer, at a short signed
 * URL `/r/<token>`, expiring, single-use by default. A request is a row here — reference, metadata,
 * source, cancellation, the random part of its token — over a `kind = 'request'` link that the links
 * feature owns and checkout claims like any other (uses = the link's payment limit).
 *
 * Status, from the link's state at read time: `cancelled` (cancelled_at) › `paid` (every use paid)
 * › `expired` (past expires_at) › `pending`.
 */
import { z } from 'zod';
import type { Knex } from 'knex';
import type { Db, Queryable, Trx } from '../../core/db.ts';
import { inTransaction, isUniqueViolation, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventBus } from '../../core/events.ts';
import { AppError, ConflictError, NotFoundError, ValidationError, fieldErrorsFromZod, type FieldError } from '../../core/errors.ts';
import { publicId, randomToken } from '../../core/ids.ts';
import { MAX_MINOR, amountCeilingError, formatMoney } from '../../core/money.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import { currencySchema, type Merchant } from '../merchants/index.ts';
import type { LinkService, LinkState, RequestLinkState } from '../links/index.ts';
import type { Customer, CustomerService } from '../customers/index.ts';
import { deliveryJson, type ChannelDirectory, type DeliveryService, type QueueItem, type Reachable } from '../deliveries/index.ts';
import { FREQUENCIES, REMINDERS_MAX, type ReminderService } from '../reminders/index.ts';
import { normalizePhone } from '../customers/index.ts';
import { SHORT_RANDOM_CHARS, type LinkTokens } from '../sending/index.ts';
import type { Limiter } from '../../core/rate-limit.ts';
import type { Badge } from '../../web/view.ts';
import { checkAmountCap, ownScope, whereMadeBy, type OwnScope } from '../../core/access.ts';
import { statusBadge } from './view.ts';
import { lineItemsFromText, lineItemsJson, lineItemsToText, lineItemsTotal, type LineItem } from '../../core/line-items.ts';

export type RequestStatus = 'pending' | 'paid' | 'expired' | 'cancelled';
export type RequestSource = 'api' | 'dashboard' | 'text_to_pay' | 'import';

export const DEFAULT_EXPIRY_SECONDS = 7 * 86_400;
export const MAX_EXPIRY_SECONDS = 366 * 86_400;
const MAX_USES = 10_000;
/** The shortest "last reminder before expiry" (and how long after creation it may be due at the earliest). */
const MIN_NOTICE_SECONDS = 15 * 60;
const METADATA_KEYS = 20;

export interface PaymentRequest {
  key: number;
  id: string;
  merchantKey: number;
  token: string;
  reference: string | null;
  source: RequestSource;
  apiKeyKey: number | null;
  /** The dashboard user who created it (null for other sources, and for requests made before this was recorded). */
  createdByUserKey: number | null;
  metadata: Record<string, string>;
  cancelledAt: Date | null;
  /** When every use was paid, and when it expired unpaid (each recorded once, with its event). */
  paidAt: Date | null;
  expiredAt: Date | null;
  /** Its customer may ask for a new link once it expired (the refresh flow). */
  allowRefresh: boolean;
  /** Seconds before expiry a last reminder goes out, on the channels it was sent on. */
  notifyBeforeExpiry: number | null;
  /** What the amount is made of (empty: just the amount). */
  lineItems: LineItem[];
  /** The request this one replaced (refresh flow), and the one that replaced it, by public id. */
  refreshedFrom: string | null;
  refreshedTo: string | null;
  /** When its successor was created (the customer asked for a new link), or null. */
  refreshedToAt: Date | null;
  createdAt: Date;
  link: RequestLinkState;
  status: RequestStatus;
}

const REFERENCE = /^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}$/;

const money = z.number({ error: 'amount must be a whole number of minor units (e.g. 1250 for 12.50).' }).int('amount must be a whole number of minor units (e.g. 1250 for 12.50).');

/** Most line items a request lists. */
const LINE_ITEMS_MAX = 50;
const oneLine = (d: string) => !/[\u0000-\u001f\u007f\u2028\u2029]/.test(d);

const lineItemSchema = z.strictObject({
  description: z.string().trim().min(1, 'Describe the item.').max(200, 'Keep an item’s description under 200 characters.').refine(oneLine, 'An item’s description cannot contain line breaks.'),
  quantity: z.number({ error: 'quantity must be a whole number.' }).int('quantity must be a whole number.').min(1, 'quantity must be at least 1.').max(10_000, 'quantity must be at most 10,000.').default(1),
  unit_amount: money.min(0, 'unit_amount cannot be negative.').max(MAX_MINOR, 'unit_amount is too large.'),
});

export type { LineItem };

const createSchema = z.strictObject({
  // Required, unless line items give it (then, if given, it must equal their total).
  amount: money.min(1, 'amount must be greater than zero.').max(MAX_MINOR, 'amount is too large.').nullish(),
  line_items: z.array(lineItemSchema, { error: 'line_items must be a list of { description, quantity, unit_amount }.' }).min(1, 'line_items needs at least one item (or leave it out).').max(LINE_ITEMS_MAX, `At most ${LINE_ITEMS_MAX} line items.`).nullish(),
  currency: currencySchema,
  description: z.string().trim().max(200, 'Keep the description under 200 characters.').refine((d) => !/[\u0000-\u001f\u007f\u2028\u2029]/.test(d), 'The description cannot contain line breaks.').nullish(),
  reference: z.string().regex(REFERENCE, 'reference must be 1–64 letters, digits or . _ : / # - (starting with a letter or digit).').nullish(),
  customer_id: z.string().max(64).nullish(),
  customer: z
    .strictObject({
      name: z.string().trim().min(1, 'Enter the customer’s name.').max(120, 'Keep the name under 120 characters.'),
      email: z.email('Enter a valid email address.').max(254).nullish(),
      phone: z.string().max(32).nullish(),
      country: z.string().length(2).nullish(),
    })
    .nullish(),
  expires_at: z.iso.datetime({ offset: true, error: 'expires_at must be an ISO 8601 date-time such as 2026-12-31T23:59:00Z.' }).nullish(),
  expires_in: z.number().int('expires_in must be a whole number of seconds.').min(60, 'expires_in must be at least 60 seconds.').max(MAX_EXPIRY_SECONDS, 'expires_in must be at most a year.').nullish(),
  channels: z.array(z.string().min(1).max(64), { error: 'channels must be a list of channel ids such as ["email", "sms"].' }).max(10, 'Pick at most 10 channels.').nullish(),
  reminders: z
    .strictObject({
      frequency: z.enum(FREQUENCIES, { error: 'Choose how often: daily, every_2_days, every_3_days, weekly or monthly.' }),
      max: z.number({ error: `max must be a whole number from 1 to ${REMINDERS_MAX}.` }).int(`max must be a whole number from 1 to ${REMINDERS_MAX}.`).min(1, `max must be a whole number from 1 to ${REMINDERS_MAX}.`).max(REMINDERS_MAX, `At most ${REMINDERS_MAX} reminders.`),
    })
    .nullish(),
  allow_refresh: z.boolean({ error: 'allow_refresh must be true or false.' }).nullish(),
  notify_before_expiry: z
    .number({ error: 'notify_before_expiry must be a whole number of seconds (86400 for a day).' })
    .int('notify_before_expiry must be a whole number of seconds (86400 for a day).')
    .min(MIN_NOTICE_SECONDS, 'notify_before_expiry must be at least 15 minutes (900 seconds).')
    .max(MAX_EXPIRY_SECONDS, 'notify_before_expiry must be at most a year.')
    .nullish(),
  max_uses: z.number().int('max_uses must be a whole number.').min(1, 'max_uses must be at least 1.').max(MAX_USES, `max_uses must be at most ${MAX_USES}.`).nullish(),
  metadata: z
    .record(z.string().min(1).max(40, 'metadata keys are at most 40 characters.'), z.string().max(500, 'metadata values are at most 500 characters.'))
    .refine((m) => Object.keys(m).length <= METADATA_KEYS, `metadata has at most ${METADATA_KEYS} keys.`)
    .nullish(),
});

/** How a request came to be written, and by whom. */
export interface WriteBy {
  source: RequestSource;
  apiKeyKey?: number | null;
  /** The dashboard user who made it. */
  userKey?: number | null;
  refreshing?: PaymentRequest;
  /** The CSV import it is part of. */
  importKey?: number;
}

/** A create's input once every rule passed: all the write needs, nothing left to look up (but the reference). */
export interface ValidRequest {
  amount: number;
  currency: string;
  description: string | null;
  reference: string | null;
  /** A customer of the merchant's (by key), or a contact to match or create. */
  customer: { key: number } | { contact: { name: string; email: string | null; phone: string | null } };
  expiresAt: Date;
  uses: number;
  /** Null: the merchant's default (Settings). */
  allowRefresh: boolean | null;
  metadata: Record<string, string> | null;
  /** The messages to send at once: channel and address. */
  sends: { channel: string; to: string }[];
  reminders: { frequency: (typeof FREQUENCIES)[number]; max: number } | null;
  /** Seconds before the expiry the last reminder goes, and when that is (on the `sends` channels). */
  notifyBeforeExpiry: number | null;
  noticeAt: Date | null;
  lineItems: LineItem[];
}

export type CheckResult = { ok: true; request: ValidRequest } | { ok: false; errors: FieldError[] };

/** What checking needs besides the input: the time, the installed channels, the customers named by id (the merchant's, by public id). */
export interface CheckContext {
  now: Date;
  channels: ChannelDirectory;
  customers: ReadonlyMap<string, Reachable & { key: number; name: string }>;
}

/**
 * The rules of a new payment request (API.md "Payment requests"), in one place for every way one is
 * made (API, dashboard, refresh, CSV import): pure, so a 10,000-row file is checked without a query
 * per row. Field names are the API's.
 */
export function checkRequest(raw: unknown, ctx: CheckContext): CheckResult {
  const parsed = createSchema.safeParse(raw ?? {});
  if (!parsed.success) return { ok: false, errors: fieldErrorsFromZod(parsed.error.issues) };
  const input = parsed.data;
  const errors: FieldError[] = [];
  const { now } = ctx;
  // The amount: given, or the line items' total (both: they must agree).
  let amount = input.amount ?? null;
  const lineItems: LineItem[] = (input.line_items ?? []).map((i) => ({ description: i.description, quantity: i.quantity, unitAmount: i.unit_amount }));
  if (lineItems.length) {
    const total = lineItemsTotal(lineItems) ?? MAX_MINOR + 1;
    if (total < 1) errors.push({ field: 'line_items', code: 'invalid_amount', message: 'The line items add up to nothing: their total must be greater than zero.' });
    else if (total > MAX_MINOR) errors.push({ field: 'line_items', code: 'invalid_amount', message: 'The line items add up to more than the largest amount a request can ask for.' });
    else if (amount !== null && amount !== total) errors.push({ field: 'amount', code: 'amount_mismatch', message: `amount (${amount}) must equal the line items’ total (${total}), or be left out.` });
    else amount = total;
  } else if (amount === null) {
    errors.push({ field: 'amount', code: 'required', message: 'amount is required (a whole number of minor units, e.g. 1250 for 12.50), unless line_items give it.' });
  }
  const tooLarge = amount === null ? null : amountCeilingError(amount, input.currency, input.amount === null || input.amount === undefined ? 'line_items' : 'amount');
  if (tooLarge) errors.push(tooLarge);
  let expiresAt = new Date(now.getTime() + (input.expires_in ?? DEFAULT_EXPIRY_SECONDS) * 1000);
  if (input.expires_at && input.expires_in) errors.push({ field: 'expires_at', code: 'conflicting_fields', message: 'Give expires_at or expires_in, not both.' });
  else if (input.expires_at) {
    expiresAt = new Date(input.expires_at);
    const ahead = expiresAt.getTime() - now.getTime();
    if (ahead < 60_000) errors.push({ field: 'expires_at', code: 'invalid_expiry', message: 'expires_at must be at least a minute from now.' });
    else if (ahead > MAX_EXPIRY_SECONDS * 1000) errors.push({ field: 'expires_at', code: 'invalid_expiry', message: 'expires_at must be at most a year from now.' });
  }
  if (input.customer_id && input.customer) errors.push({ field: 'customer', code: 'conflicting_fields', message: 'Give customer_id or customer, not both.' });
  if (!input.customer_id && !input.customer) errors.push({ field: 'customer', code: 'required', message: 'Name the customer: customer_id, or customer with a name and an email or phone.' });
  let phone: string | null = null;
  if (input.customer) {
    if (!input.customer.email && !input.customer.phone) errors.push({ field: 'customer.email', code: 'required', message: 'Give the customer’s email or phone.' });
    if (input.customer.phone) {
      const p = normalizePhone(input.customer.phone, input.customer.country ?? undefined);
      if (p.ok) phone = p.e164;
      else errors.push({ field: 'customer.phone', code: 'invalid_phone', message: p.message });
    }
  }
  const existingCustomer = input.customer_id ? ctx.customers.get(input.customer_id) ?? null : null;
  if (input.customer_id && !existingCustomer) errors.push({ field: 'customer_id', code: 'not_found', message: 'No customer of yours has this id.' });
  // Sent in the same call: every channel must be installed and reach the customer (their record,
  // or the contact given here), or the merchant would believe it went.
  const { channels } = ctx;
  const chosen = [...new Set(input.channels ?? [])];
  const reachable: Reachable = existingCustomer ?? { name: input.customer?.name ?? '', email: input.customer?.email?.trim().toLowerCase() || null, phone, addresses: undefined };
  const who = existingCustomer?.name ?? input.customer?.name ?? 'The customer';
  const sends: { channel: string; to: string }[] = [];
  for (const id of chosen) {
    const channel = channels.get(id);
    if (!channel) {
      errors.push({ field: 'channels', code: 'unknown_channel', message: `“${id}” is not an installed channel (installed: ${channels.list().map((c) => c.id).join(', ')}).` });
      continue;
    }
    if (errors.some((e) => e.field.startsWith('customer'))) continue;
    const to = channels.addressFor(reachable, id);
    if (to) sends.push({ channel: id, to });
    else errors.push({ field: 'channels', code: 'channel_unreachable', message: `${who} has no ${channel.addressLabel}, so ${channel.label} cannot reach them.` });
  }
  if (input.reminders && !chosen.length) errors.push({ field: 'reminders', code: 'no_channels', message: 'Reminders go by the channels the request is sent on: give channels too.' });
  const noticeAt = input.notify_before_expiry ? new Date(expiresAt.getTime() - input.notify_before_expiry * 1000) : null;
  if (noticeAt) {
    if (!chosen.length) errors.push({ field: 'notify_before_expiry', code: 'no_channels', message: 'The last reminder goes by the channels the request is sent on: give channels too.' });
    else if (!errors.some((e) => e.field === 'expires_at') && noticeAt.getTime() - now.getTime() < MIN_NOTICE_SECONDS * 1000) {
      errors.push({ field: 'notify_before_expiry', code: 'notice_too_late', message: 'The last reminder would be due at once: the request must expire later than notify_before_expiry plus 15 minutes from now.' });
    }
  }
  if (errors.length) return { ok: false, errors };
  return {
    ok: true,
    request: {
      amount: amount!,
      currency: input.currency.toUpperCase(),
      description: input.description || null,
      reference: input.reference ?? null,
      customer: existingCustomer ? { key: existingCustomer.key } : { contact: { name: input.customer!.name, email: input.customer!.email ?? null, phone } },
      expiresAt,
      uses: input.max_uses ?? 1,
      allowRefresh: input.allow_refresh ?? null,
      metadata: input.metadata ?? null,
      sends,
      reminders: input.reminders ?? null,
      notifyBeforeExpiry: input.notify_before_expiry ?? null,
      noticeAt,
      lineItems,
    },
  };
}

const listSchema = listQuerySchema.extend({
  status: z.enum(['pending', 'paid', 'expired', 'cancelled'], { error: 'status must be pending, paid, expired or cancelled.' }).optional(),
  reference: z.string().max(64).optional(),
  customer_id: z.string().max(64).optional(),
  import_id: z.string().max(64).optional(),
  created_gte: z.iso.datetime({ offset: true, error: 'created_gte must be an ISO 8601 date-time.' }).optional(),
  created_lte: z.iso.datetime({ offset: true, error: 'created_lte must be an ISO 8601 date-time.' }).optional(),
});

interface Row {
  id: number;
  public_id: string;
  merchant_id: number;
  link_id: number;
  token: string;
  reference: string | null;
  source: string;
  api_key_id: number | null;
  metadata: string | null;
  cancelled_at: unknown;
  paid_at?: unknown;
  expired_at?: unknown;
  allow_refresh?: unknown;
  notify_before_expiry?: number | null;
  line_items?: string | null;
  refreshed_from_id?: number | null;
  created_by_user_id?: number | null;
  created_at: unknown;
}

export function statusOf(link: RequestLinkState, cancelledAt: Date | null, now: Date): RequestStatus {
  if (cancelledAt) return 'cancelled';
  if (link.paidCount >= link.uses) return 'paid';
  if (link.expiresAt && link.expiresAt.getTime() <= now.getTime()) return 'expired';
  return 'pending';
}

export interface RequestDeps {
  db: Db;
  clock: Clock;
  events: EventBus;
  baseUrl: string;
  tokens: Pick<LinkTokens, 'shortRequest' | 'shortRequestOf'>;
  links: Pick<LinkService, 'createRequest'>;
  linkState: Pick<LinkState, 'requestLinks' | 'closeRequest' | 'requestLinkIdsWhere' | 'keyOf' | 'keysByIds'>;
  customers: Pick<CustomerService, 'get' | 'getMany' | 'matchOrCreateContact' | 'summariesByKeys'>;
  deliveries: Pick<DeliveryService, 'queue' | 'forLinks' | 'channels' | 'notifyMerchant'>;
  reminders: Pick<ReminderService, 'createPlan'>;
  /** Declined payments per request (by link key): `threshold` within the limiter's window lock it. */
  declines: { limiter: Limiter; threshold: number };
}

export function createRequestService(deps: RequestDeps) {
  const { db, clock, events } = deps;

  async function hydrate(q: Db | Trx, rows: Row[]): Promise<PaymentRequest[]> {
    const links = await deps.linkState.requestLinks(q, rows.map((r) => Number(r.link_id)));
    // The chain both ways: the ids of the requests these replaced, and of those that replaced them.
    const fromKeys = rows.flatMap((r) => (r.refreshed_from_id ? [Number(r.refreshed_from_id)] : []));
    const chain = (await q('payment_requests')
      .where((b) => b.whereIn('id', fromKeys.length ? fromKeys : [0]).orWhereIn('refreshed_from_id', rows.map((r) => Number(r.id))))
      .select('id', 'public_id', 'refreshed_from_id', 'created_at')) as { id: number; public_id: string; refreshed_from_id: number | null; created_at: unknown }[];
    const idOf = new Map(chain.map((c) => [Number(c.id), c.public_id]));
    const successorOf = new Map(chain.filter((c) => c.refreshed_from_id).map((c) => [Number(c.refreshed_from_id), c]));
    const now = clock.now();
    return rows.flatMap((r) => {
      const link = links.get(Number(r.link_id));
      if (!link) return [];
      const cancelledAt = toDateOrNull(r.cancelled_at);
      return [
        {
          key: Number(r.id),
          id: r.public_id,
          merchantKey: Number(r.merchant_id),
          token: r.token,
          reference: r.reference ?? null,
          source: r.source as RequestSource,
          apiKeyKey: r.api_key_id === null || r.api_key_id === undefined ? null : Number(r.api_key_id),
          createdByUserKey: r.created_by_user_id === null || r.created_by_user_id === undefined ? null : Number(r.created_by_user_id),
          metadata: r.metadata ? (JSON.parse(r.metadata) as Record<string, string>) : {},
          cancelledAt,
          paidAt: toDateOrNull(r.paid_at),
          expiredAt: toDateOrNull(r.expired_at),
          allowRefresh: Boolean(r.allow_refresh),
          notifyBeforeExpiry: r.notify_before_expiry === null || r.notify_before_expiry === undefined ? null : Number(r.notify_before_expiry),
          lineItems: lineItemsFromText(r.line_items),
          refreshedFrom: r.refreshed_from_id ? idOf.get(Number(r.refreshed_from_id)) ?? null : null,
          refreshedTo: successorOf.get(Number(r.id))?.public_id ?? null,
          refreshedToAt: successorOf.has(Number(r.id)) ? toDate(successorOf.get(Number(r.id))!.created_at) : null,
          createdAt: toDate(r.created_at),
          link,
          status: statusOf(link, cancelledAt, now),
        },
      ];
    });
  }

  const scoped = (q: Db | Trx, merchantKey: number) => q('payment_requests').where({ merchant_id: merchantKey });
  /** The merchant's requests `only` made (every one without `only`). */
  const visible = (q: Db | Trx, merchantKey: number, only: OwnScope | null | undefined) =>
    whereMadeBy(scoped(q, merchantKey), only, { user: 'payment_requests.created_by_user_id', key: 'payment_requests.api_key_id' });

  /** Narrows a query of the merchant's payment_requests to those with `status` now (see statusOf). */
  const withStatus = (query: Knex.QueryBuilder, merchantKey: number, status: RequestStatus, now: Date) =>
    status === 'cancelled'
      ? query.whereNotNull('payment_requests.cancelled_at')
      : query.whereNull('payment_requests.cancelled_at').whereIn('payment_requests.link_id', deps.linkState.requestLinkIdsWhere(merchantKey, { state: status, now }));

  async function byReference(q: Db | Trx, merchantKey: number, reference: string): Promise<PaymentRequest | null> {
    const row = (await scoped(q, merchantKey).andWhere({ reference }).first()) as Row | undefined;
    return row ? (await hydrate(q, [row]))[0] ?? null : null;
  }

  const referenceTaken = (existing: PaymentRequest) =>
    new AppError('reference_taken', 409, `A payment request with this reference already exists (${existing.id}).`, {
      errors: [{ field: 'reference', code: 'reference_taken', message: 'A payment request with this reference already exists.' }],
      extra: { existing_id: existing.id },
    });

  const service = {
    /** The installed channels a request can be sent on: id and label (the import page lists them). */
    installedChannels(): { id: string; label: string }[] {
      return deps.deliveries.channels.list().map((c) => ({ id: c.id, label: c.label }));
    },

    /** The URL a customer opens: `<BASE_URL>/r/<token>`. */
    urlOf(r: PaymentRequest): string {
      return `${deps.baseUrl}/r/${deps.tokens.shortRequest(r.token)}`;
    },

    async create(merchant: Merchant, raw: unknown, by: WriteBy): Promise<PaymentRequest> {
      // An agent names only their own customers by id, and asks for no more than their cap.
      const [checked] = await service.check(merchant.key, [raw], ownScope(merchant.actor));
      if (!checked.ok) throw new ValidationError(checked.errors);
      const v = checked.request;
      checkAmountCap(merchant.actor, v.amount, v.currency, merchant.currency);
      if (v.reference) {
        const existing = await byReference(db, merchant.key, v.reference);
        if (existing) throw referenceTaken(existing);
      }
      let id = '';
      try {
        await inTransaction(db, async (trx) => {
          const written = await service.write(trx, merchant, v, by);
          id = written.id;
          await deps.deliveries.queue(trx, written.sends);
        });
      } catch (err) {
        // Two creates racing with one reference: the unique index decides; the loser answers 409.
        if (v.reference && isUniqueViolation(err)) {
          const existing = await byReference(db, merchant.key, v.reference);
          if (existing) throw referenceTaken(existing);
        }
        throw err;
      }
      return service.get(merchant.key, id);
    },

    /**
     * The validate step of create(), for many inputs at once: each is held to the same rules
     * (checkRequest), the customers they name by id read in a few queries for all. References already
     * taken are not checked here (see referencesTaken: create answers 409, an import lists the row).
     */
    async check(merchantKey: number, raws: unknown[], only: OwnScope | null = null): Promise<CheckResult[]> {
      const ids = [...new Set(raws.flatMap((r) => (r && typeof r === 'object' && typeof (r as { customer_id?: unknown }).customer_id === 'string' ? [(r as { customer_id: string }).customer_id] : [])))];
      const customers = new Map<string, Customer>();
      for (let i = 0; i < ids.length; i += 500) {
        for (const c of await deps.customers.getMany(merchantKey, ids.slice(i, i + 500), only)) customers.set(c.id, c);
      }
      const ctx: CheckContext = { now: clock.now(), channels: deps.deliveries.channels, customers };
      return raws.map((raw) => checkRequest(raw, ctx));
    },

    /** Which of these references the merchant's requests already have. */
    async referencesTaken(merchantKey: number, references: string[], q: Db | Trx = db): Promise<Set<string>> {
      const wanted = [...new Set(references)];
      const taken = new Set<string>();
      for (let i = 0; i < wanted.length; i += 500) {
        for (const r of (await scoped(q, merchantKey).whereIn('reference', wanted.slice(i, i + 500)).select('reference')) as { reference: string }[]) taken.add(r.reference);
      }
      return taken;
    },

    /**
     * The write step of create(), in the caller's transaction: the customer (matched or created), the
     * link, the request, its reminders and events. Answers the messages to queue (the caller queues
     * them: an import queues a whole batch at once).
     */
    async write(trx: Trx, merchant: Merchant, v: ValidRequest, by: WriteBy): Promise<{ id: string; key: number; sends: QueueItem[] }> {
      const now = clock.now();
      const id = publicId('req');
      // Who made it: the member or key acting, unless the caller names them (an import's key).
      const userKey = by.userKey ?? merchant.actor?.userKey ?? null;
      const apiKeyKey = by.apiKeyKey ?? merchant.actor?.apiKeyKey ?? null;
      const customerKey = 'key' in v.customer ? v.customer.key : await deps.customers.matchOrCreateContact(trx, merchant.key, v.customer.contact, { userKey, apiKeyKey });
      const { reference, description, amount, currency } = v;
      const link = await deps.links.createRequest(trx, merchant, {
        name: description ?? (reference ? `Payment request ${reference}` : `Payment request: ${formatMoney(amount, currency)}`),
        description,
        amount,
        currency,
        customerKey,
        expiresAt: v.expiresAt,
        uses: v.uses,
        by: { source: by.source, apiKeyKey, userKey },
      });
      const [key] = await trx('payment_requests').insert({
        public_id: id,
        merchant_id: merchant.key,
        link_id: link.key,
        token: randomToken(SHORT_RANDOM_CHARS),
        reference,
        source: by.source,
        api_key_id: apiKeyKey,
        created_by_user_id: userKey,
        metadata: v.metadata && Object.keys(v.metadata).length ? JSON.stringify(v.metadata) : null,
        allow_refresh: v.allowRefresh ?? merchant.requestAllowRefresh,
        notify_before_expiry: v.notifyBeforeExpiry,
        line_items: lineItemsToText(v.lineItems),
        refreshed_from_id: by.refreshing?.key ?? null,
        ...(by.importKey ? { import_id: by.importKey } : {}),
        created_at: now,
        updated_at: now,
      });
      // Reminders until paid (a payment stops them; an expired or cancelled request sends none).
      if (v.reminders) {
        await deps.reminders.createPlan(trx, { merchantKey: merchant.key, linkKey: link.key, customerKey, channels: v.sends.map((x) => x.channel), frequency: v.reminders.frequency, max: v.reminders.max, anchor: now, timeZone: merchant.timezone });
      }
      await events.emit(trx, 'payment_request.created', { merchantId: merchant.id, requestId: id, linkId: link.id, reference, amount, currency, source: by.source }, merchant.key);
      if (by.refreshing) await events.emit(trx, 'payment_request.refreshed', { merchantId: merchant.id, requestId: by.refreshing.id, newRequestId: id, reference }, merchant.key);
      const send = (x: { channel: string; to: string }) => ({ merchantKey: merchant.key, linkKey: link.key, customerKey, channel: x.channel, to: x.to });
      return {
        id,
        key: Number(key),
        sends: [
          ...v.sends.map((x) => ({ ...send(x), kind: 'initial' as const })),
          // The last reminder, written now and sent when due — unless it is paid, expired or cancelled by then.
          ...(v.noticeAt ? v.sends.map((x) => ({ ...send(x), kind: 'expiry' as const, at: v.noticeAt })) : []),
        ],
      };
    },

    /** One of the merchant's requests; one `only` did not make is a 404 too. */
    async get(merchantKey: number, id: string, only: OwnScope | null = null): Promise<PaymentRequest> {
      const row = (await visible(db, merchantKey, only).andWhere({ public_id: id }).first()) as Row | undefined;
      const [r] = row ? await hydrate(db, [row]) : [];
      if (!r) throw new NotFoundError('No payment request of yours has this id.');
      return r;
    },

    async list(merchantKey: number, raw: unknown, only: OwnScope | null = null): Promise<Page<PaymentRequest>> {
      const parsed = listSchema.safeParse(raw ?? {});
      if (!parsed.success) throw new ValidationError(fieldErrorsFromZod(parsed.error.issues));
      const q = parsed.data;
      const query = visible(db, merchantKey, only).select('payment_requests.*');
      if (q.reference) query.andWhere('reference', q.reference);
      if (q.import_id) query.whereIn('import_id', db('request_imports').where({ merchant_id: merchantKey, public_id: q.import_id }).select('id'));
      if (q.created_gte) query.andWhere('created_at', '>=', new Date(q.created_gte));
      if (q.created_lte) query.andWhere('created_at', '<=', new Date(q.created_lte));
      const now = clock.now();
      if (q.customer_id) {
        const customer = await deps.customers.get(merchantKey, q.customer_id, only).catch(() => null);
        if (!customer) return { data: [], has_more: false };
        query.whereIn('link_id', deps.linkState.requestLinkIdsWhere(merchantKey, { customerKey: customer.key, now }));
      }
      if (q.status) withStatus(query, merchantKey, q.status, now);
      const afterKey = q.starting_after ? Number((await scoped(db, merchantKey).andWhere({ public_id: q.starting_after }).first('id'))?.id ?? 0) || null : null;
      return pageByIdDesc<Row, PaymentRequest>(query, { limit: q.limit, afterKey, idColumn: 'payment_requests.id' }, (rows) => hydrate(db, rows));
    },

    /**
     * The requests created in [from, before) (the reconciliation report's range, already turned into
     * UTC instants), oldest first, `limit` at a time after the request `after` (a public id).
     */
    async createdBetween(merchantKey: number, range: { from: Date; before: Date }, opts: { after?: string | null; limit: number }): Promise<Page<PaymentRequest>> {
      const anchor = opts.after ? ((await scoped(db, merchantKey).andWhere({ public_id: opts.after }).first('id', 'created_at')) as { id: number; created_at: unknown } | undefined) : undefined;
      const q = scoped(db, merchantKey).andWhere('created_at', '>=', range.from).andWhere('created_at', '<', range.before);
      if (anchor) {
        const at = toDate(anchor.created_at);
        q.andWhere((b) => b.where('created_at', '>', at).orWhere((c) => c.where('created_at', '=', at).andWhere('id', '>', Number(anchor.id))));
      }
      const rows = (await q.orderBy('created_at', 'asc').orderBy('id', 'asc').limit(opts.limit + 1)) as Row[];
      return { data: await hydrate(db, rows.slice(0, opts.limit)), has_more: rows.length > opts.limit };
    },

    /** Every request created in [from, before), oldest first, a chunk at a time (reports: memory stays flat). */
    async *eachCreatedBetween(merchantKey: number, range: { from: Date; before: Date }, chunk = 200): AsyncGenerator<PaymentRequest[]> {
      let after: string | null = null;
      for (;;) {
        const page = await service.createdBetween(merchantKey, range, { after, limit: chunk });
        if (page.data.length) yield page.data;
        if (!page.has_more || !page.data.length) return;
        after = page.data[page.data.length - 1].id;
      }
    },

    /** Cancels a pending (or expired) request: its link closes for good. Cancelling twice is harmless; a paid request cannot be. */
    async cancel(merchant: Merchant, id: string): Promise<PaymentRequest> {
      const r = await service.get(merchant.key, id, ownScope(merchant.actor));
      if (r.status === 'cancelled') return r;
      if (r.status === 'paid') throw new ConflictError('request_paid', 'This payment request is paid; refund the payment instead.');
      await inTransaction(db, async (trx) => {
        const now = clock.now();
        const changed = await trx('payment_requests').where({ id: r.key }).whereNull('cancelled_at').update({ cancelled_at: now, updated_at: now });
        if (!changed) return;
        await deps.linkState.closeRequest(trx, r.link.key);
        await events.emit(trx, 'payment_request.cancelled', { merchantId: merchant.id, requestId: r.id, linkId: r.link.id, reference: r.reference }, merchant.key);
      });
      return service.get(merchant.key, id);
    },

    /**
     * The request a `/r/<token>` URL names: the MAC is checked first (a forged or altered token costs
     * no database read), then the token's random part is looked up. Null when unknown.
     */
    async byToken(token: string): Promise<PaymentRequest | null> {
      const random = deps.tokens.shortRequestOf(token);
      if (!random) return null;
      const row = (await db('payment_requests').where({ token: random }).first()) as Row | undefined;
      return row ? (await hydrate(db, [row]))[0] ?? null : null;
    },

    /**
     * A subquery of the ids of the merchant's request links whose request has `status` now (the Links
     * page filters the links table with it).
     */
    linkKeysWhere(merchantKey: number, f: { status: RequestStatus }): Knex.QueryBuilder {
      return withStatus(scoped(db, merchantKey).select('payment_requests.link_id'), merchantKey, f.status, clock.now());
    },

    /** The id, status and status badge of the request over each of these links, by link key (the Links page's rows). */
    async refsByLinkKeys(linkKeys: number[]): Promise<Map<number, { id: string; status: RequestStatus; badge: Badge }>> {
      const byLink = await service.byLinkKeys(linkKeys);
      return new Map([...byLink].map(([key, r]) => [key, { id: r.id, status: r.status, badge: statusBadge(r.status) }]));
    },

    /** The short `/r/` path segment of the requests over these links, by link key (what the links feature's URLs use). */
    async pathsByLinkKeys(linkKeys: number[], q: Db | Trx = db): Promise<Map<number, string>> {
      if (!linkKeys.length) return new Map();
      const rows = (await q('payment_requests').whereIn('link_id', [...new Set(linkKeys)]).select('link_id', 'token')) as { link_id: number; token: string }[];
      return new Map(rows.map((r) => [Number(r.link_id), deps.tokens.shortRequest(r.token)]));
    },

    /**
     * The refresh flow: the customer of an expired request that allows it asks for a new link. A fresh
     * request with the same terms (amount, description, uses, metadata, the same time to pay) and the
     * reference with a `-R<n>` suffix is sent to the contact on file — by the channel the old one went
     * by, else email, else a text — never to an address typed by the visitor. One successor per
     * request (a unique index decides when two ask at once).
     */
    async refresh(merchant: Merchant, r: PaymentRequest): Promise<{ ok: true; request: PaymentRequest; channel: string; to: string } | { ok: false; reason: 'not_allowed' | 'already' | 'unreachable' }> {
      if (!r.allowRefresh || r.status !== 'expired') return { ok: false, reason: 'not_allowed' };
      if (r.refreshedTo) return { ok: false, reason: 'already' };
      const customer = r.link.customerKey === null ? null : (await deps.customers.summariesByKeys([r.link.customerKey])).get(r.link.customerKey);
      if (!customer || customer.deleted) return { ok: false, reason: 'unreachable' };
      const { channels } = deps.deliveries;
      const sentBy = ((await deps.deliveries.forLinks([r.link.key])).get(r.link.key) ?? []).find((d) => d.kind === 'initial')?.channel;
      const channel = [sentBy, 'email', 'sms'].find((c): c is string => !!c && channels.has(c) && channels.addressFor(customer, c) !== null);
      if (!channel) return { ok: false, reason: 'unreachable' };
      const m = r.reference ? /^(.*)-R(\d+)$/.exec(r.reference) : null;
      const suffix = `-R${m ? Number(m[2]) + 1 : 1}`;
      const reference = r.reference ? `${(m ? m[1] : r.reference).slice(0, 64 - suffix.length)}${suffix}` : null;
      const took = r.link.expiresAt ? Math.round((r.link.expiresAt.getTime() - r.createdAt.getTime()) / 1000) : DEFAULT_EXPIRY_SECONDS;
      try {
        const request = await service.create(
          merchant,
          {
            amount: r.link.amount,
            currency: r.link.currency,
            description: r.link.description,
            reference,
            customer_id: customer.id,
            channels: [channel],
            expires_in: Math.min(MAX_EXPIRY_SECONDS, Math.max(60, took)),
            max_uses: r.link.uses,
            metadata: Object.keys(r.metadata).length ? r.metadata : null,
            allow_refresh: true,
            line_items: r.lineItems.length ? r.lineItems.map((i) => ({ description: i.description, quantity: i.quantity, unit_amount: i.unitAmount })) : null,
            notify_before_expiry: r.notifyBeforeExpiry !== null && r.notifyBeforeExpiry + MIN_NOTICE_SECONDS < took ? r.notifyBeforeExpiry : null,
          },
          // The new link is the same maker's (an agent still sees it), though the customer asked for it.
          { source: r.source, refreshing: r, userKey: r.createdByUserKey, apiKeyKey: r.apiKeyKey },
        );
        return { ok: true, request, channel, to: channels.addressFor(customer, channel)! };
      } catch (err) {
        // Another visitor refreshed it a moment ago (the successor or its reference exists now).
        if (isUniqueViolation(err) || (err instanceof AppError && err.code === 'reference_taken')) return { ok: false, reason: 'already' };
        throw err;
      }
    },

    /** How long the request over this link is locked after a decline storm (ms; 0 when it is not). */
    async lockedFor(linkKey: number): Promise<number> {
      const res = await deps.declines.limiter.get(String(linkKey));
      return res && res.consumedPoints >= deps.declines.threshold ? Math.max(1_000, res.msBeforeNext) : 0;
    },

    /** The requests over these links, by link key (the pay page asks for one; lists for many). */
    async byLinkKeys(linkKeys: number[]): Promise<Map<number, PaymentRequest>> {
      if (!linkKeys.length) return new Map();
      const rows = (await db('payment_requests').whereIn('link_id', [...new Set(linkKeys)])) as Row[];
      return new Map((await hydrate(db, rows)).map((r) => [r.link.key, r]));
    },

    /** The API shape (API.md "Payment requests") of each, their customers read in one query. */
    async jsonMany(rs: PaymentRequest[]) {
      const [customers, sent] = await Promise.all([
        deps.customers.summariesByKeys(rs.flatMap((r) => (r.link.customerKey === null ? [] : [r.link.customerKey]))),
        // deliveryJson names no link: the request is the link.
        deps.deliveries.forLinks(rs.map((r) => r.link.key), { linkNames: false }),
      ]);
      return rs.map((r) => {
        const c = r.link.customerKey === null ? null : customers.get(r.link.customerKey) ?? null;
        return { ...requestJson(r, service.urlOf(r), c ? { id: c.id, name: c.name, email: c.email, phone: c.phone } : null), deliveries: (sent.get(r.link.key) ?? []).map(deliveryJson) };
      });
    },
    async json(r: PaymentRequest) {
      return (await service.jsonMany([r]))[0];
    },
  };
  /** The request over the link with this public id (the events below name links), or null. */
  async function byLinkId(linkId: string): Promise<PaymentRequest | null> {
    const linkKey = await deps.linkState.keyOf(linkId);
    if (linkKey === null) return null;
    return (await service.byLinkKeys([linkKey])).get(linkKey) ?? null;
  }

  /** The few fields an event about a request names (two key lookups, no hydration), or null. */
  async function refByLinkId(linkId: string): Promise<{ id: string; reference: string | null; merchantKey: number } | null> {
    const linkKey = await deps.linkState.keyOf(linkId);
    if (linkKey === null) return null;
    const row = await db('payment_requests').where({ link_id: linkKey }).first('public_id', 'reference', 'merchant_id');
    return row ? { id: row.public_id, reference: row.reference ?? null, merchantKey: Number(row.merchant_id) } : null;
  }

  /**
   * Records an outcome once: `column` is set by a conditional UPDATE and the event is emitted in the
   * same transaction only when this call set it, so a handler that runs twice emits once.
   */
  async function recordOnce(r: PaymentRequest, column: 'paid_at' | 'expired_at', emit: (trx: Trx) => Promise<unknown>): Promise<void> {
    await inTransaction(db, async (trx) => {
      const now = clock.now();
      const set = await trx('payment_requests').where({ id: r.key }).whereNull(column).update({ [column]: now, updated_at: now });
      if (set) await emit(trx);
    });
  }

  // A run is queued only for events about a payment request's link (most payments are on smart links).
  // Asked in the emitting transaction `q`, for all the events emitted together: two queries however
  // many (a bulk send's hundreds of delivery.sent), not two per event. `only` narrows by payload first.
  const onLinks = (only: (payload: Record<string, unknown>) => boolean = () => true) => ({
    many: async (evs: { payload: unknown }[], q: Queryable): Promise<boolean[]> => {
      const ids = evs.map((e) => {
        const p = e.payload as Record<string, unknown>;
        return typeof p.linkId === 'string' && only(p) ? p.linkId : null;
      });
      const keys = await deps.linkState.keysByIds(ids.filter((id): id is string => id !== null), q);
      const withRequest = keys.size ? new Set(((await q('payment_requests').whereIn('link_id', [...keys.values()]).select('link_id')) as { link_id: number | string }[]).map((r) => Number(r.link_id))) : new Set<number>();
      return ids.map((id) => id !== null && withRequest.has(keys.get(id) ?? -1));
    },
  });
  // A decline storm (card testing, or a customer guessing) on one request locks it for the window and
  // tells the merchant once per window.
  events.subscribe(
    'payment.failed',
    'core:payment-requests:declines',
    async (event) => {
      if (event.payload.reason !== 'card_declined' || !event.payload.linkId) return;
      const r = await byLinkId(event.payload.linkId);
      if (!r || r.status !== 'pending') return;
      const { limiter, threshold } = deps.declines;
      // Counted once per failed payment (a rerun handler must not count it again).
      const counted = await limiter.consume(`seen:${event.payload.paymentId}`, 1).then((x) => x.consumedPoints === 1, () => false);
      if (!counted) return;
      const res = await limiter.penalty(String(r.link.key), 1);
      if (res.consumedPoints !== threshold) return;
      await inTransaction(db, (trx) =>
        deps.deliveries.notifyMerchant(trx, {
          merchantKey: r.merchantKey,
          key: `request-locked:${r.id}:${Math.floor(clock.now().getTime() / 3_600_000)}`,
          subject: 'A payment request was locked after repeated declines',
          text: `Your payment request ${r.reference ?? r.id} (${formatMoney(r.link.amount, r.link.currency)}) was declined ${threshold} times in a short time, so we stopped accepting payments on it for now. This is what card testing looks like; if it was your customer, they can try again later.\n\n${deps.baseUrl}/app/requests/${r.id}\n`,
        }),
      );
    },
    () => true,
    onLinks(),
  );
  // The request's message left on a channel: `payment_request.sent`, one per channel.
  events.subscribe(
    'delivery.sent',
    'core:payment-requests:sent',
    async (event) => {
      const { merchantId, linkId, deliveryId, channel } = event.payload;
      const r = linkId ? await refByLinkId(linkId) : null;
      if (!r || !linkId) return;
      // Like every hook, at least once: a crash between this commit and the run's own record repeats
      // it; receivers tell repeats apart by `deliveryId`.
      await inTransaction(db, (trx) => events.emit(trx, 'payment_request.sent', { merchantId, requestId: r.id, linkId, reference: r.reference, deliveryId, channel }, r.merchantKey));
    },
    () => true,
    onLinks((p) => p.kind === 'initial'),
  );
  // Every use paid: `payment_request.paid`, naming the payment that completed it.
  events.subscribe(
    'payment.succeeded',
    'core:payment-requests:paid',
    async (event) => {
      const r = event.payload.linkId ? await byLinkId(event.payload.linkId) : null;
      if (!r || r.status !== 'paid') return;
      const { merchantId, paymentId } = event.payload;
      await recordOnce(r, 'paid_at', (trx) => events.emit(trx, 'payment_request.paid', { merchantId, requestId: r.id, linkId: r.link.id, reference: r.reference, paymentId }, r.merchantKey));
    },
    () => true,
    onLinks(),
  );
  // The request link lapsed unpaid (links.expire closes it): `payment_request.expired`.
  events.subscribe(
    'link.expired',
    'core:payment-requests:expired',
    async (event) => {
      const r = await byLinkId(event.payload.linkId);
      if (!r || r.status !== 'expired') return;
      const expiredAt = r.link.expiresAt!.toISOString();
      await recordOnce(r, 'expired_at', (trx) => events.emit(trx, 'payment_request.expired', { merchantId: event.payload.merchantId, requestId: r.id, linkId: r.link.id, reference: r.reference, expiredAt }, r.merchantKey));
    },
    () => true,
    onLinks(),
  );
  return service;
}

export function requestJson(r: PaymentRequest, url: string, customer: { id: string; name: string; email: string | null; phone: string | null } | null) {
  return {
    id: r.id,
    object: 'payment_request',
    url,
    status: r.status,
    reference: r.reference,
    amount: r.link.amount,
    currency: r.link.currency,
    description: r.link.description,
    customer,
    expires_at: r.link.expiresAt?.toISOString() ?? null,
    max_uses: r.link.uses,
    paid_count: r.link.paidCount,
    metadata: r.metadata,
    source: r.source,
    link_id: r.link.id,
    allow_refresh: r.allowRefresh,
    notify_before_expiry: r.notifyBeforeExpiry,
    line_items: lineItemsJson(r.lineItems),
    refreshed_from: r.refreshedFrom,
    refreshed_to: r.refreshedTo,
    cancelled_at: r.cancelledAt?.toISOString() ?? null,
    created_at: r.createdAt.toISOString(),
  };
}

export type RequestService = ReturnType<typeof createRequestService>;
