/**
 * Reading payments (JSON API `/payments`, a link's payments): newest first, scoped to one merchant,
 * with the link's public id and the customer (a customer record, else what the checkout collected).
 * Writes stay in service.ts; this file only reads.
 */
import { z } from 'zod';
import type { OwnScope } from '../../core/access.ts';
import type { Knex } from 'knex';
import { toDate, toDateOrNull, type Db } from '../../core/db.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import type { CustomerService } from '../customers/index.ts';
import type { LinkState } from '../links/index.ts';
import { lineItemsFromText, lineItemsJson, type LineItem } from '../../core/line-items.ts';
import type { PaymentMethodInfo } from '../../plugin-api.ts';
import { discountFrom, paymentFrom, type Discount, type LinkSnapshot, type Payment, type PaymentStatus } from './service.ts';

export const PAYMENT_STATUSES: readonly PaymentStatus[] = ['pending', 'authorized', 'paid', 'failed', 'voided', 'refunded', 'partially_refunded'];

export interface PaymentCustomer {
  /** `cus_…` when the payment belongs to a customer record, else null. */
  id: string | null;
  name: string | null;
  email: string | null;
  phone: string | null;
}

export interface PaymentView extends Payment {
  linkId: string | null;
  /** The link's current name (null when the payment came from no link). */
  linkName: string | null;
  /** The link has been deleted since (its payments stay; its page does not). */
  linkDeleted: boolean;
  customer: PaymentCustomer | null;
  /** What the checkout session remembered of the link the customer paid through (attribution). */
  source: LinkSnapshot | null;
  /** What the checkout sold, line by line (an items link's order, a payment request's list); empty: just the amount. */
  lineItems: LineItem[];
  /** The coupon its checkout applied (`amount` is the total after it), or null. */
  discount: Discount | null;
  /** What the link's checkout collected: custom fields by key (null when it had none). */
  fields: Record<string, string | number | boolean | null> | null;
  /** The postal address and special instructions the customer entered, when the link asked. */
  address: string | null;
  instructions: string | null;
  /** When the customer ticked the merchant's terms (links with a terms URL). */
  termsAcceptedAt: Date | null;
}

/** Filters of the Transactions page and its CSV export. */
export interface PaymentFilters {
  linkKey?: number;
  status?: PaymentStatus;
  /** Created at or after / before (UTC instants, already converted from the merchant's dates). */
  createdFrom?: Date | null;
  createdBefore?: Date | null;
  /** Only the payments of links these made (an agent's); absent: all. */
  only?: OwnScope | null;
}

export const paymentSearchSchema = z.object({
  link_id: z.string({ error: 'link_id must be a link id.' }).max(64, 'link_id must be a link id.').optional(),
  status: z.enum(PAYMENT_STATUSES as [PaymentStatus, ...PaymentStatus[]], { error: `status must be one of ${PAYMENT_STATUSES.join(', ')}.` }).optional(),
  subscription_id: z.string({ error: 'subscription_id must be a subscription id.' }).max(64, 'subscription_id must be a subscription id.').optional(),
});

/** What the payment lists need of the links and customers features (batch lookups by key). */
export interface PaymentQueryDeps {
  db: Db;
  links: Pick<LinkState, 'refsByKeys' | 'keyOf'>;
  customers: Pick<CustomerService, 'summariesByKeys'>;
  /** The merchant's links `only` made, as a subquery of keys (the links feature's linkKeysMadeBy). */
  linkKeysMadeBy: (merchantKey: number, only: OwnScope) => Knex.QueryBuilder;
}

/** The API representation (shared/API.md: id, link_id, customer, amount, currency, status, provider, created_at, paid_at). */
export function paymentJson(p: PaymentView) {
  return {
    id: p.id,
    object: 'payment',
    link_id: p.linkId,
    customer: p.customer,
    amount: p.amount,
    currency: p.currency,
    line_items: lineItemsJson(p.lineItems),
    status: p.status,
    amount_refunded: p.amountRefunded,
    provider: p.provider,
    payment_method: paymentMethodJson(p.paymentMethod),
    dispute_status: p.disputeStatus,
    // A short code the provider gave the customer to quote (the crypto provider's verification code).
    support_reference: p.supportReference,
    // What arrived when it did not match the price, and the merchant's decision (null: none reported).
    outcome: p.outcome ? { kind: p.outcome.kind, amount_received: p.outcome.amountReceived, resolution: p.outcome.resolution, resolved_at: p.outcome.resolvedAt?.toISOString() ?? null } : null,
    failure_code: p.failureCode,
    // The subscription this payment started or renewed (docs/api.md "Subscriptions").
    subscription_id: p.subscriptionId,
    // The coupon applied at checkout: amount_before − amount_off = amount.
    discount: p.discount ? { coupon_id: p.discount.couponId, code: p.discount.code, amount_before: p.discount.amountBefore, amount_off: p.discount.amountOff } : null,
    // What the link's checkout collected (API.md "Checkout builder"); the phone is customer.phone.
    fields: p.fields ?? {},
    address: p.address,
    instructions: p.instructions,
    terms_accepted_at: p.termsAcceptedAt?.toISOString() ?? null,
    created_at: p.createdAt.toISOString(),
    paid_at: p.paidAt?.toISOString() ?? null,
  };
}

export function createPaymentQueries({ db, links, customers, linkKeysMadeBy }: PaymentQueryDeps) {
  /** An actor who sees only their own records sees the payments of their own links. */
  const ownOnly = (q: Knex.QueryBuilder, merchantKey: number, only: OwnScope | null | undefined) => (only ? q.whereIn('p.link_id', linkKeysMadeBy(merchantKey, only)) : q);
  const base = (merchantKey: number, only?: OwnScope | null) =>
    ownOnly(db('payments as p'), merchantKey, only)
      .leftJoin('checkout_sessions as s', 's.id', 'p.checkout_session_id')
      .where('p.merchant_id', merchantKey)
      .select(
        'p.*',
        's.link_snapshot as s_link_snapshot',
        's.customer_name as s_customer_name',
        's.customer_email as s_customer_email',
        's.customer_phone as s_customer_phone',
        's.line_items as s_line_items',
        's.discount as s_discount',
        's.fields as s_fields',
        's.address as s_address',
        's.instructions as s_instructions',
        's.terms_accepted_at as s_terms_accepted_at',
      );

  /** Rows to views: the links and customers they name come from their owners, one query each. */
  async function viewsFrom(rows: any[]): Promise<PaymentView[]> {
    const keys = (column: string) => rows.map((r) => r[column]).filter((k): k is number => k !== null && k !== undefined).map(Number);
    const [linkRefs, contacts] = await Promise.all([links.refsByKeys(keys('link_id')), customers.summariesByKeys(keys('customer_id'))]);
    return rows.map((r) => {
      const link = r.link_id === null || r.link_id === undefined ? undefined : linkRefs.get(Number(r.link_id));
      const c = r.customer_id === null || r.customer_id === undefined ? undefined : contacts.get(Number(r.customer_id));
      const name = c?.name ?? r.s_customer_name ?? null;
      const email = c?.email ?? r.s_customer_email ?? null;
      const phone = c?.phone ?? r.s_customer_phone ?? null;
      const id = c?.id ?? null;
      return {
        ...paymentFrom(r),
        linkId: link?.id ?? null,
        linkName: link?.name ?? null,
        linkDeleted: link?.deleted ?? false,
        customer: id || name || email || phone ? { id, name, email, phone } : null,
        source: r.s_link_snapshot ? (JSON.parse(r.s_link_snapshot) as LinkSnapshot | null) : null,
        lineItems: lineItemsFromText(r.s_line_items),
        discount: discountFrom(r.s_discount),
        fields: r.s_fields ? (JSON.parse(r.s_fields) as PaymentView['fields']) : null,
        address: r.s_address ?? null,
        instructions: r.s_instructions ?? null,
        termsAcceptedAt: toDateOrNull(r.s_terms_accepted_at),
      };
    });
  }

  const narrowed = (q: Knex.QueryBuilder, f: PaymentFilters) => {
    if (f.linkKey !== undefined) q.andWhere('p.link_id', f.linkKey);
    if (f.status) q.andWhere('p.status', f.status);
    if (f.createdFrom) q.andWhere('p.created_at', '>=', f.createdFrom);
    if (f.createdBefore) q.andWhere('p.created_at', '<', f.createdBefore);
    return q;
  };
  const filtered = (merchantKey: number, f: PaymentFilters) => narrowed(ownOnly(db('payments as p').where('p.merchant_id', merchantKey), merchantKey, f.only), f);
  const newestFirst = (q: Knex.QueryBuilder) => q.orderBy('p.created_at', 'desc').orderBy('p.id', 'desc');

  return {
    /**
     * Numbered pages, newest first (the Transactions page, a link's Payments tab). The page's ids come
     * from an index alone (deferred join), then only those rows are read.
     */
    async search(merchantKey: number, f: PaymentFilters, opts: { page: number; perPage: number }): Promise<{ items: PaymentView[]; total: number; page: number; pages: number }> {
      const [{ n }] = await filtered(merchantKey, f).count({ n: '*' });
      const total = Number(n);
      const pages = Math.max(1, Math.ceil(total / opts.perPage));
      const page = Math.min(Math.max(1, Math.floor(opts.page)), pages);
      const ids = newestFirst(filtered(merchantKey, f).select('p.id')).limit(opts.perPage).offset((page - 1) * opts.perPage);
      const rows = await newestFirst(base(merchantKey).join(ids.as('pg'), 'pg.id', 'p.id'));
      return { items: await viewsFrom(rows), total, page, pages };
    },

    /** These payments (by internal key), for a merged activity list. */
    async byKeys(merchantKey: number, keys: number[]): Promise<PaymentView[]> {
      if (!keys.length) return [];
      return viewsFrom(await base(merchantKey).whereIn('p.id', keys));
    },

    /** Every matching payment, newest first, a chunk at a time (CSV export: memory stays flat). */
    async *each(merchantKey: number, f: PaymentFilters, chunk = 1_000): AsyncGenerator<PaymentView[]> {
      let before: number | null = null;
      for (;;) {
        const q = narrowed(base(merchantKey, f.only), f).orderBy('p.id', 'desc').limit(chunk);
        if (before !== null) q.andWhere('p.id', '<', before);
        const rows = await q;
        if (!rows.length) return;
        yield await viewsFrom(rows);
        if (rows.length < chunk) return;
        before = rows[rows.length - 1].id;
      }
    },

    /**
     * Every payment (every status: the attempts) on these links, oldest first, by link key, with the
     * provider's reference on each: payment requests' audit trails and reconciliation, a batch of
     * requests at a time (one query per 500 links).
     */
    async forLinks(merchantKey: number, linkKeys: number[]): Promise<Map<number, PaymentView[]>> {
      const out = new Map<number, PaymentView[]>();
      const unique = [...new Set(linkKeys)];
      for (let i = 0; i < unique.length; i += 500) {
        const rows = await base(merchantKey).whereIn('p.link_id', unique.slice(i, i + 500)).orderBy('p.created_at', 'asc').orderBy('p.id', 'asc');
        for (const p of await viewsFrom(rows)) {
          const list = out.get(Number(p.linkKey)) ?? [];
          list.push(p);
          out.set(Number(p.linkKey), list);
        }
      }
      return out;
    },

    /** How many payments (every status) a link has. */
    async countForLink(linkKey: number): Promise<number> {
      const [{ n }] = await db('payments').where({ link_id: linkKey }).count({ n: '*' });
      return Number(n);
    },

    /**
     * A link's activity side of payments: `'payment' as kind, id, created_at as t`, newest first, at
     * most `limit`, strictly older than `before` (same instant: only keys below `before.key`, none when
     * it is null). A query to run or to union with other activity (one statement either way).
     */
    activityKeys(linkKey: number, limit: number, before?: { at: Date; key: number | null }): Knex.QueryBuilder {
      const q = db('payments').select(db.raw("'payment' as kind"), 'id', 'created_at as t').where('link_id', linkKey);
      if (before) {
        q.andWhere((b) =>
          b.where('created_at', '<', before.at).orWhere((c) => c.where('created_at', '=', before.at).andWhere((d) => (before.key === null ? d.whereRaw('1 = 0') : d.where('id', '<', before.key)))),
        );
      }
      return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit);
    },

    /** A payment of this link by public id, as an activity cursor (time, key), or null. */
    async activityAnchor(linkKey: number, paymentId: string): Promise<{ at: Date; key: number } | null> {
      const p = await db('payments').where({ public_id: paymentId, link_id: linkKey }).first('id', 'created_at');
      return p ? { at: toDate(p.created_at), key: Number(p.id) } : null;
    },

    /** The merchant's payments by public id, as views (customer and link named): one query for the rows, one each for links and customers. */
    async byIds(merchantKey: number, ids: string[]): Promise<Map<string, PaymentView>> {
      const out = new Map<string, PaymentView>();
      const unique = [...new Set(ids)];
      for (let i = 0; i < unique.length; i += 500) {
        for (const v of await viewsFrom(await base(merchantKey).whereIn('p.public_id', unique.slice(i, i + 500)))) out.set(v.id, v);
      }
      return out;
    },

    /**
     * Money received since each of `since` (instants, e.g. the starts of today, of the last 7 and 30
     * days in the merchant's time zone): per currency, the sum and count of payments paid in each
     * window, in one query. Refunds are not taken off (this is what came in).
     */
    async paidTotals(merchantKey: number, since: Date[]): Promise<{ currency: string; windows: { amount: number; count: number }[] }[]> {
      if (!since.length) return [];
      const earliest = new Date(Math.min(...since.map((d) => d.getTime())));
      const columns = since.flatMap((d, i) => [
        db.raw(`SUM(CASE WHEN paid_at >= ? THEN amount ELSE 0 END) as a${i}`, [d]),
        db.raw(`SUM(CASE WHEN paid_at >= ? THEN 1 ELSE 0 END) as c${i}`, [d]),
      ]);
      const rows = (await db('payments').where({ merchant_id: merchantKey }).whereNotNull('paid_at').andWhere('paid_at', '>=', earliest).groupBy('currency').orderBy('currency').select('currency', ...columns)) as Record<string, unknown>[];
      return rows.map((r) => ({ currency: String(r.currency), windows: since.map((_, i) => ({ amount: Number(r[`a${i}`] ?? 0), count: Number(r[`c${i}`] ?? 0) })) }));
    },

    async get(merchantKey: number, id: string, only: OwnScope | null = null): Promise<PaymentView> {
      const r = await base(merchantKey, only).andWhere('p.public_id', id).first();
      if (!r) throw new NotFoundError('No such payment.');
      return (await viewsFrom([r]))[0];
    },

    /**
     * Newest first; filters `link_id` (public id), `status` and `subscription_id`. `scope.linkKey` restricts to one
     * link (the caller has checked it is the merchant's).
     */
    async list(merchantKey: number, rawQuery: unknown = {}, scope: { linkKey?: number; only?: OwnScope | null } = {}): Promise<Page<PaymentView>> {
      const page = parseBody(listQuerySchema, rawQuery);
      const f = parseBody(paymentSearchSchema, rawQuery);
      const q = base(merchantKey, scope.only);
      if (scope.linkKey !== undefined) q.andWhere('p.link_id', scope.linkKey);
      if (f.link_id) q.andWhere('p.link_id', (await links.keyOf(f.link_id)) ?? 0);
      if (f.status) q.andWhere('p.status', f.status);
      // A subscription's payments: its first and every renewal.
      if (f.subscription_id) q.andWhere('p.subscription_id', f.subscription_id);
      let afterKey: number | null = null;
      if (page.starting_after) {
        const anchor = await db('payments').where({ merchant_id: merchantKey, public_id: page.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of your payments.' }]);
        afterKey = anchor.id;
      }
      return pageByIdDesc(q, { limit: page.limit, afterKey, idColumn: 'p.id' }, viewsFrom);
    },
  };
}

export type PaymentQueries = ReturnType<typeof createPaymentQueries>;

/** `payment_method` as the API spells it (`tx_hashes`). */
function paymentMethodJson(pm: PaymentMethodInfo | null): Record<string, unknown> | null {
  if (!pm) return null;
  const { txHashes, ...rest } = pm;
  return txHashes?.length ? { ...rest, tx_hashes: txHashes } : rest;
}
