/**
 * Reading payments (JSON API `/payments`, a link's payments): newest first, scoped to one merchant,
 * with the link's public id and the customer (a customer record, else what the checkout collected).
 * Writes stay in service.ts; this file only reads.
 */
import { z } from 'zod';
import type { Db } from '../../core/db.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import { paymentFrom, type Payment, type PaymentStatus } from './service.ts';

export const PAYMENT_STATUSES: readonly PaymentStatus[] = ['pending', 'authorized', 'paid', 'failed', 'voided', 'refunded'];

export interface PaymentCustomer {
  /** `cus_…` when the payment belongs to a customer record, else null. */
  id: string | null;
  name: string | null;
  email: string | null;
  phone: string | null;
}

export interface PaymentView extends Payment {
  linkId: string | null;
  customer: PaymentCustomer | null;
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
    customer: id || name || email || phone ? { id, name, email, phone } : null,
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
        'c.public_id as c_public_id',
        'c.name as c_name',
        'c.email as c_email',
        'c.phone as c_phone',
        's.customer_name as s_customer_name',
        's.customer_email as s_customer_email',
        's.customer_phone as s_customer_phone',
      );

  return {
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
