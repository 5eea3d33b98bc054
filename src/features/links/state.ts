/**
 * A link's state machine and counters (DESIGN.md "Layout": links owns `paid_count`, holds, `active`
 * and its counters). Checkout, analytics and products change or ask about them only through these
 * capabilities; a write that must commit with the caller's own takes the caller's transaction.
 *
 *   claimSlot     → one conditional UPDATE decides (never read-check-write); the winner that fills
 *                   the limit closes the link (`limit_reached`, `link.limit_reached`)
 *   releaseSlot   → a capture that failed gives its slot back and reopens a link its limit closed
 *   recordPayment / recordRefund → payments_count and revenue (net of refunds); the slot stays taken
 *   recordViews / recordPrunedViews → views_count and views_pruned, in key order
 */
import type { Db, Queryable, Trx } from '../../core/db.ts';
import { isMysql, rowsByKeys, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventBus } from '../../core/events.ts';
import type { InactiveReason } from './service.ts';

/** Why a payment lost its claim: the limit was reached, or the link takes no payments at all. */
export type ClaimLoss = 'limit_reached' | 'link_inactive';

/** A live link as its pay page needs it (one query, by path or by a request's public id). */
export interface PayableLinkRow {
  key: number;
  id: string;
  merchantKey: number;
  kind: 'smart' | 'request';
  customerKey: number | null;
  expiresAt: Date | null;
  type: 'amount' | 'product';
  name: string;
  path: string | null;
  description: string | null;
  amount: number | null;
  currency: string;
  productKey: number | null;
  paymentLimit: number | null;
  paidCount: number;
  active: boolean;
  inactiveReason: InactiveReason | null;
  showRemaining: boolean;
  redirectUrl: string | null;
  redirectTarget: 'same' | 'new';
}

/** What a list of payments shows of the link each came from (deleted links included). */
export interface LinkRef {
  id: string;
  name: string;
  deleted: boolean;
}

const PAYABLE_COLUMNS = `select id, public_id, merchant_id, kind, type, name, path, description, amount, currency, product_id,
  payment_limit, paid_count, active, inactive_reason, show_remaining, redirect_url, redirect_target, customer_id, expires_at
from links`;
const PAYABLE_LINK_SQL = `${PAYABLE_COLUMNS}
where merchant_id = ? and path = ? and kind = 'smart' and deleted_at is null
limit 1`;
const PAYABLE_REQUEST_SQL = `${PAYABLE_COLUMNS}
where public_id = ? and kind = 'request' and deleted_at is null
limit 1`;

const payableFrom = (r: any): PayableLinkRow => ({
  key: r.id,
  id: r.public_id,
  merchantKey: r.merchant_id,
  kind: r.kind,
  customerKey: r.customer_id ?? null,
  expiresAt: toDateOrNull(r.expires_at),
  type: r.type,
  name: r.name,
  path: r.path,
  description: r.description,
  amount: r.amount === null || r.amount === undefined ? null : Number(r.amount),
  currency: r.currency,
  productKey: r.product_id ?? null,
  paymentLimit: r.payment_limit ?? null,
  paidCount: Number(r.paid_count),
  active: Boolean(r.active),
  inactiveReason: r.inactive_reason ?? null,
  showRemaining: Boolean(r.show_remaining),
  redirectUrl: r.redirect_url,
  redirectTarget: r.redirect_target,
});

export function createLinkState({ db, clock, events }: { db: Db; clock: Clock; events: EventBus }) {
  async function payable(sql: string, bindings: unknown[]): Promise<PayableLinkRow | null> {
    // A fixed SQL string: building this query with knex costs more than running it (the pay page's hot path).
    const result = await db.raw(sql, bindings as any[]);
    const rows = (isMysql(db) ? result[0] : result) as any[];
    return rows.length ? payableFrom(rows[0]) : null;
  }

  return {
    /** A live (not deleted) smart link by its canonical path, in one query. */
    payableByPath: (merchantKey: number, path: string) => payable(PAYABLE_LINK_SQL, [merchantKey, path]),

    /** A live payment request (`/r/<token>`) by its public id, in one query. */
    payableRequest: (linkId: string) => payable(PAYABLE_REQUEST_SQL, [linkId]),

    /**
     * Claims one payment slot on the link, in the caller's transaction (a payment's authorization).
     * The decision is one conditional UPDATE: active, not deleted, under its limit. The claim that
     * fills the limit closes the link and announces `link.limit_reached` (`merchantId` and
     * `paymentId` name it in the event).
     */
    async claimSlot(trx: Trx, linkKey: number, by: { merchantId: string; paymentId: string }): Promise<{ won: true } | { won: false; reason: ClaimLoss }> {
      const now = clock.now();
      const slot = await trx('links')
        .where({ id: linkKey, active: true })
        .whereNull('deleted_at')
        .andWhere((b) => b.whereNull('payment_limit').orWhere('paid_count', '<', trx.ref('payment_limit')))
        .update({ paid_count: trx.raw('paid_count + 1'), updated_at: now });
      if (slot !== 1) {
        // Only to word the customer's message: the decision above was the conditional UPDATE alone.
        const link = await trx('links').where({ id: linkKey }).first('active', 'inactive_reason', 'deleted_at');
        const inactive = !link || link.deleted_at || (!link.active && link.inactive_reason !== 'limit_reached');
        return { won: false, reason: inactive ? 'link_inactive' : 'limit_reached' };
      }
      const closed = await trx('links')
        .where({ id: linkKey, active: true })
        .whereNotNull('payment_limit')
        .andWhere('paid_count', '>=', trx.ref('payment_limit'))
        .update({ active: false, inactive_reason: 'limit_reached', updated_at: now });
      if (closed) {
        const link = await trx('links').where({ id: linkKey }).first('public_id', 'payment_limit', 'merchant_id');
        await events.emit(trx, 'link.limit_reached', { merchantId: by.merchantId, linkId: link.public_id, limit: link.payment_limit, paymentId: by.paymentId }, link.merchant_id);
      }
      return { won: true };
    },

    /**
     * Gives back a slot whose payment was never captured (in the caller's transaction, which moves
     * the payment out of `authorized` once): the link reopens if its limit had closed it.
     */
    async releaseSlot(trx: Trx, linkKey: number): Promise<void> {
      await trx('links').where({ id: linkKey }).andWhere('paid_count', '>', 0).update({ paid_count: trx.raw('paid_count - 1') });
      await trx('links')
        .where({ id: linkKey, inactive_reason: 'limit_reached' })
        .whereNull('deleted_at')
        .andWhere('paid_count', '<', trx.ref('payment_limit'))
        .update({ active: true, inactive_reason: null });
    },

    /** A captured payment: one more payment and its amount in revenue (in the capture's transaction). */
    async recordPayment(trx: Trx, linkKey: number, amount: number): Promise<void> {
      await trx('links').where({ id: linkKey }).update({ payments_count: trx.raw('payments_count + 1'), revenue: trx.raw('revenue + ?', [amount]) });
    },

    /**
     * A succeeded refund: revenue is shown net of refunds; paid_count (the limit's slot) and
     * payments_count stay. Answers the link's public id (the refund's event names it).
     */
    async recordRefund(trx: Trx, linkKey: number, amount: number): Promise<{ linkId: string | null }> {
      await trx('links').where({ id: linkKey }).update({ revenue: trx.raw('revenue - ?', [amount]) });
      const r = await trx('links').where({ id: linkKey }).first('public_id');
      return { linkId: r?.public_id ?? null };
    },

    /**
     * Adds views to links' counters, in key order: concurrent writers (other processes) lock link
     * rows in the same order, so they queue instead of deadlocking.
     */
    async recordViews(trx: Trx, perLink: Map<number, number>): Promise<void> {
      for (const [link, n] of [...perLink].sort((a, b) => a[0] - b[0])) {
        await trx('links').where({ id: link }).update({ views_count: trx.raw('views_count + ?', [n]) });
      }
    },

    /** Raw view rows retention removed: the counter keeps them, views_pruned records how many went. */
    async recordPrunedViews(trx: Trx, linkKey: number, n: number): Promise<void> {
      await trx('links').where({ id: linkKey }).update({ views_pruned: trx.raw('views_pruned + ?', [n]) });
    },

    /** Every link of a merchant (deleted ones too: their views stay until retention removes them). */
    async keysOf(merchantKey: number): Promise<number[]> {
      return (await db('links').where('merchant_id', merchantKey).select('id')).map((r) => Number(r.id));
    },

    /** Whether a live (not deleted) link sells this product. */
    async sellsProduct(productKey: number): Promise<boolean> {
      return Boolean(await db('links').where({ product_id: productKey }).whereNull('deleted_at').first('id'));
    },

    /** A link's public id by key (deleted links too); `q` is the caller's transaction when inside one. */
    async publicIdOf(q: Queryable, linkKey: number): Promise<string | null> {
      return (await q('links').where({ id: linkKey }).first('public_id'))?.public_id ?? null;
    },

    /** Public id, name and deletion of these links (deleted ones too), one query per batch. */
    async refsByKeys(keys: number[]): Promise<Map<number, LinkRef>> {
      return rowsByKeys(db, 'links', keys, ['public_id', 'name', 'deleted_at'], (r) => ({ id: r.public_id, name: r.name, deleted: Boolean(r.deleted_at) }));
    },

    /** A link's key by its public id (deleted links too), or null. */
    async keyOf(linkId: string): Promise<number | null> {
      const r = await db('links').where({ public_id: linkId }).first('id');
      return r ? Number(r.id) : null;
    },
  };
}

export type LinkState = ReturnType<typeof createLinkState>;
