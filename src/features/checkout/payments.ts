/**
 * Reading payments (JSON API `/payments`, a link's payments): newest first, scoped to one merchant,
 * with the link's public id and the customer (a customer record, else what the checkout collected).
 * Writes stay in service.ts; this file only reads.
 */
import { z } from 'zod';
import type { Knex } from 'knex';
import type { Db } from '../../core/db.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import { paymentFrom, type LinkSnapshot, type Payment, type PaymentStatus } from './service.ts';

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
}

/** Filters of the Transactions page and its CSV export. */
export interface PaymentFilters {
  linkKey?: number;
  status?: PaymentStatus;
  /** Created at or after / before (UTC instants, already converted from the merchant's dates). */
  createdFrom?: Date | null;
  createdBefore?: Date | null;
}

export const paymentSearchSchema = z.object({
  link_id: z.string({ error: 'link_id must be a link id.' }).max(64, 'link_id must be a link id.').optional(),
  status: z.enum(PAYMENT_STATUSES as [PaymentStatus, ...PaymentStatus[]], { error: `status must be one of ${PAYMENT_STATUSES.join(', ')}.` }).optional(),
});

function viewFrom(r: any): PaymentView {
  const name = r.c_name ?? r.s_customer_name ?? null;
  const email = r.c_email ?? r.s_customer_email ?? null;
  const phone = r.c_phone ?? r.s_customer_phone ?? null;
  const id = r.c_public_id ?? null;
  return {
    ...paymentFrom(r),
    linkId: r.l_public_id ?? null,
    linkName: r.l_name ?? null,
    linkDeleted: Boolean(r.l_deleted_at),
    customer: id || name || email || phone ? { id, name, email, phone } : null,
    source: r.s_link_snapshot ? (JSON.parse(r.s_link_snapshot) as LinkSnapshot | null) : null,
  };
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
    status: p.status,
    amount_refunded: p.amountRefunded,
    provider: p.provider,
    failure_code: p.failureCode,
    created_at: p.createdAt.toISOString(),
    paid_at: p.paidAt?.toISOString() ?? null,
  };
}

export function createPaymentQueries({ db }: { db: Db }) {
  const base = (merchantKey: number) =>
    db('payments as p')
      .leftJoin('links as l', 'l.id', 'p.link_id')
      .leftJoin('customers as c', 'c.id', 'p.customer_id')
      .leftJoin('checkout_sessions as s', 's.id', 'p.checkout_session_id')
      .where('p.merchant_id', merchantKey)
      .select(
        'p.*',
        'l.public_id as l_public_id',
        'l.name as l_name',
        'l.deleted_at as l_deleted_at',
        's.link_snapshot as s_link_snapshot',
        'c.public_id as c_public_id',
        'c.name as c_name',
        'c.email as c_email',
        'c.phone as c_phone',
        's.customer_name as s_customer_name',
        's.customer_email as s_customer_email',
        's.customer_phone as s_customer_phone',
      );

  const narrowed = (q: Knex.QueryBuilder, f: PaymentFilters) => {
    if (f.linkKey !== undefined) q.andWhere('p.link_id', f.linkKey);
    if (f.status) q.andWhere('p.status', f.status);
    if (f.createdFrom) q.andWhere('p.created_at', '>=', f.createdFrom);
    if (f.createdBefore) q.andWhere('p.created_at', '<', f.createdBefore);
    return q;
  };
  const filtered = (merchantKey: number, f: PaymentFilters) => narrowed(db('payments as p').where('p.merchant_id', merchantKey), f);
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
      return { items: rows.map(viewFrom), total, page, pages };
    },

    /** These payments (by internal key), for a merged activity list. */
    async byKeys(merchantKey: number, keys: number[]): Promise<PaymentView[]> {
      if (!keys.length) return [];
      return (await base(merchantKey).whereIn('p.id', keys)).map(viewFrom);
    },

    /** Every matching payment, newest first, a chunk at a time (CSV export: memory stays flat). */
    async *each(merchantKey: number, f: PaymentFilters, chunk = 1_000): AsyncGenerator<PaymentView[]> {
      let before: number | null = null;
      for (;;) {
        const q = narrowed(base(merchantKey), f).orderBy('p.id', 'desc').limit(chunk);
        if (before !== null) q.andWhere('p.id', '<', before);
        const rows = await q;
        if (!rows.length) return;
        yield rows.map(viewFrom);
        if (rows.length < chunk) return;
        before = rows[rows.length - 1].id;
      }
    },

    async get(merchantKey: number, id: string): Promise<PaymentView> {
      const r = await base(merchantKey).andWhere('p.public_id', id).first();
      if (!r) throw new NotFoundError('No such payment.');
      return viewFrom(r);
    },

    /**
     * Newest first; filters `link_id` (public id) and `status`. `scope.linkKey` restricts to one
     * link (the caller has checked it is the merchant's).
     */
    async list(merchantKey: number, rawQuery: unknown = {}, scope: { linkKey?: number } = {}): Promise<Page<PaymentView>> {
      const page = parseBody(listQuerySchema, rawQuery);
      const f = parseBody(paymentSearchSchema, rawQuery);
      const q = base(merchantKey);
      if (scope.linkKey !== undefined) q.andWhere('p.link_id', scope.linkKey);
      if (f.link_id) q.andWhere('l.public_id', f.link_id);
      if (f.status) q.andWhere('p.status', f.status);
      let afterKey: number | null = null;
      if (page.starting_after) {
        const anchor = await db('payments').where({ merchant_id: merchantKey, public_id: page.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of your payments.' }]);
        afterKey = anchor.id;
      }
      return pageByIdDesc(q, { limit: page.limit, afterKey, idColumn: 'p.id' }, (rows) => rows.map(viewFrom));
    },
  };
}

export type PaymentQueries = ReturnType<typeof createPaymentQueries>;
