/**
 * A link's state machine and counters (DESIGN.md "Layout": links owns `paid_count`, holds, `active`
 * and its counters). Checkout, analytics and products change or ask about them only through these
 * capabilities; a write that must commit with the caller's own takes the caller's transaction.
 *
 *   claimSlot     → one conditional UPDATE decides (never read-check-write): `paid_count + held_count
 *                   < payment_limit`; the winner that fills the limit closes the link
 *                   (`limit_reached`, `link.limit_reached`)
 *   releaseSlot   → a capture that failed gives its slot back and reopens a link its limit closed
 *   holdSlot      → immediate capture: a checkout session holds a slot until a time (`held_count + 1`
 *                   under the same condition, and a `link_holds` row naming the session)
 *   convertHold   → the held payment succeeded: paid + 1, held - 1 in one statement (closing the link
 *                   at its limit as claimSlot does); the hold row goes
 *   releaseHold / releaseLapsedHolds → a hold given back (failure, abandonment) or past its end (the
 *                   `links.release_holds` job, per minute): held - 1, the hold row goes
 *   Invariant: paid_count + held_count ≤ payment_limit, and held_count = the link's rows in link_holds
 *   (every statement that moves held_count deletes or inserts the row in the same transaction, and
 *   only after the row's own conditional DELETE/INSERT decided it).
 *   recordPayment / recordRefund → payments_count and revenue (net of refunds); the slot stays taken
 *   recordViews / recordPrunedViews → views_count and views_pruned, in key order
 */
import type { Db, Queryable, Trx } from '../../core/db.ts';
import { inTransaction, isMysql, rowsByKeys, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventBus } from '../../core/events.ts';
import type { ChangeFeed } from '../../core/changes.ts';
import type { InactiveReason } from './service.ts';
import { customAmountFromText, itemRowsOf, type CustomAmount } from './items.ts';
import { collectFrom, type Collect } from './collect.ts';

/** Why a payment lost its claim: the limit was reached, or the link takes no payments at all. */
export type ClaimLoss = 'limit_reached' | 'link_inactive';

/**
 * Why a checkout could not hold a slot: the limit is reached (or the link closed), or every slot
 * left is held by other checkouts until `retryAt` (the earliest of their ends).
 */
export type HoldLoss = { reason: ClaimLoss } | { reason: 'all_held'; retryAt: Date };

/** A live link as its pay page needs it (one query, by path or by a request's public id). */
export interface PayableLinkRow {
  key: number;
  id: string;
  merchantKey: number;
  kind: 'smart' | 'request';
  customerKey: number | null;
  expiresAt: Date | null;
  type: 'amount' | 'product' | 'items';
  name: string;
  path: string | null;
  description: string | null;
  amount: number | null;
  currency: string;
  productKey: number | null;
  /** When the customer chooses the amount (amount links without a fixed amount). */
  customAmount: CustomAmount | null;
  paymentLimit: number | null;
  paidCount: number;
  /** Slots held by immediate-capture checkouts still under way. */
  heldCount: number;
  active: boolean;
  inactiveReason: InactiveReason | null;
  showRemaining: boolean;
  allowCoupons: boolean;
  /** What the checkout collects beyond name and email (null: nothing more). */
  collect: Collect | null;
  redirectUrl: string | null;
  redirectTarget: 'same' | 'new';
  /** The pay-page look this link overrides (JSON, branding feature), or null. */
  branding: string | null;
}

/** A request link as its payment request reads it. */
export interface RequestLinkState {
  key: number;
  id: string;
  name: string;
  description: string | null;
  amount: number;
  currency: string;
  uses: number;
  paidCount: number;
  active: boolean;
  inactiveReason: InactiveReason | null;
  customerKey: number | null;
  expiresAt: Date | null;
  /** Times its URL was opened (the link's counter: retention never lowers it). */
  views: number;
}

/** What a list of payments shows of the link each came from (deleted links included). */
export interface LinkRef {
  id: string;
  name: string;
  deleted: boolean;
}

const PAYABLE_COLUMNS = `select id, public_id, merchant_id, kind, type, name, path, description, amount, currency, product_id, custom_amount,
  payment_limit, paid_count, held_count, active, inactive_reason, show_remaining, allow_coupons, collect, redirect_url, redirect_target, customer_id, expires_at, branding
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
  customAmount: customAmountFromText(r.custom_amount),
  paymentLimit: r.payment_limit ?? null,
  paidCount: Number(r.paid_count),
  heldCount: Number(r.held_count ?? 0),
  active: Boolean(r.active),
  inactiveReason: r.inactive_reason ?? null,
  showRemaining: Boolean(r.show_remaining),
  allowCoupons: Boolean(r.allow_coupons),
  collect: collectFrom(r.collect),
  redirectUrl: r.redirect_url,
  redirectTarget: r.redirect_target,
  branding: r.branding ?? null,
});

export function createLinkState({ db, clock, events, changes }: { db: Db; clock: Clock; events: EventBus; changes?: ChangeFeed }) {
  /** Slots are free while paid + held stay under the limit (or there is none): the one condition every claim and hold uses. */
  const underLimit = (b: any) => b.whereNull('payment_limit').orWhereRaw('paid_count + held_count < payment_limit');
  /** Not past its expiry (payment requests): the time of the claim decides, not when the expiry sweep runs. */
  const unexpired = (now: Date) => (b: any) => b.whereNull('expires_at').orWhere('expires_at', '>', now);

  /** The payment that fills the limit closes the link and announces `link.limit_reached`, in the caller's transaction. */
  async function closeIfFull(trx: Trx, linkKey: number, by: { merchantId: string; paymentId: string }, now: Date): Promise<void> {
    const closed = await trx('links')
      .where({ id: linkKey, active: true })
      .whereNotNull('payment_limit')
      .andWhere('paid_count', '>=', trx.ref('payment_limit'))
      .update({ active: false, inactive_reason: 'limit_reached', updated_at: now });
    if (closed) {
      const link = await trx('links').where({ id: linkKey }).first('public_id', 'payment_limit', 'merchant_id');
      await events.emit(trx, 'link.limit_reached', { merchantId: by.merchantId, linkId: link.public_id, limit: link.payment_limit, paymentId: by.paymentId }, link.merchant_id);
    }
  }

  /** Why a claim or hold on this link lost (read only to word it: the conditional UPDATE decided). */
  async function lossOf(trx: Trx, linkKey: number): Promise<HoldLoss> {
    const link = await trx('links').where({ id: linkKey }).first('active', 'inactive_reason', 'deleted_at', 'paid_count', 'payment_limit', 'expires_at');
    const expired = link?.expires_at && toDate(link.expires_at).getTime() <= clock.now().getTime();
    const inactive = !link || link.deleted_at || expired || (!link.active && link.inactive_reason !== 'limit_reached');
    if (inactive) return { reason: 'link_inactive' };
    if (!link.active || link.payment_limit === null || Number(link.paid_count) >= Number(link.payment_limit)) return { reason: 'limit_reached' };
    const retryAt = await earliestHoldEnd(trx, linkKey);
    return retryAt ? { reason: 'all_held', retryAt } : { reason: 'limit_reached' };
  }

  async function earliestHoldEnd(q: Queryable, linkKey: number): Promise<Date | null> {
    const r = await q('link_holds').where({ link_id: linkKey }).min({ at: 'expires_at' }).first();
    return toDateOrNull(r?.at ?? null);
  }

  /** Gives one hold back: its row goes (the conditional DELETE decides, once), then the counter. */
  async function dropHold(trx: Trx, linkKey: number, sessionKey: number, extra: (b: any) => void = () => {}): Promise<boolean> {
    const q = trx('link_holds').where({ link_id: linkKey, checkout_session_id: sessionKey });
    extra(q);
    const n = await q.del();
    if (!n) return false;
    await trx('links').where({ id: linkKey }).andWhere('held_count', '>', 0).update({ held_count: trx.raw('held_count - 1') });
    changes?.afterCommit(trx);
    return true;
  }

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
        .andWhere(underLimit)
        .andWhere(unexpired(now))
        .update({ paid_count: trx.raw('paid_count + 1'), updated_at: now });
      if (slot !== 1) {
        // Only to word the customer's message: the decision above was the conditional UPDATE alone.
        const loss = await lossOf(trx, linkKey);
        return { won: false, reason: loss.reason === 'link_inactive' ? 'link_inactive' : 'limit_reached' };
      }
      await closeIfFull(trx, linkKey, by, now);
      return { won: true };
    },

    /**
     * Holds a slot until `until` for the checkout session `openSession` creates (immediate capture),
     * in the caller's transaction. One conditional UPDATE decides (`paid_count + held_count <
     * payment_limit`, active, not deleted); only the winner's `openSession` runs (it writes the
     * session), then the hold names it. A loss writes nothing and says why, and when a slot may free up.
     *
     * The UPDATE comes first on purpose: inserting rows that reference the link takes a shared lock
     * on it (MySQL/MariaDB foreign keys), and two transactions that both hold that lock and then
     * ask to update the row deadlock. Locking the row for update first makes them queue instead.
     */
    async holdSlot<T>(trx: Trx, linkKey: number, until: Date, openSession: () => Promise<{ sessionKey: number; value: T }>): Promise<({ won: true } & { value: T }) | ({ won: false } & HoldLoss)> {
      const now = clock.now();
      const n = await trx('links')
        .where({ id: linkKey, active: true })
        .whereNull('deleted_at')
        .andWhere(underLimit)
        .andWhere(unexpired(now))
        .update({ held_count: trx.raw('held_count + 1'), updated_at: now });
      if (n !== 1) return { won: false, ...(await lossOf(trx, linkKey)) };
      const { sessionKey, value } = await openSession();
      await trx('link_holds').insert({ link_id: linkKey, checkout_session_id: sessionKey, expires_at: until, created_at: now });
      changes?.afterCommit(trx);
      return { won: true, value };
    },

    /**
     * The held checkout was paid: its hold becomes the payment — paid + 1 and held - 1 in one
     * statement — and the payment that fills the limit closes the link, as `claimSlot` does. Answers
     * `none` when the session holds nothing (never held, released, or lapsed and released by the job).
     * A link the merchant closed (or whose limit they lowered) since gives the hold back and loses; a
     * request that expired since does not (its customer paid within the slot they held).
     */
    async convertHold(trx: Trx, linkKey: number, sessionKey: number, by: { merchantId: string; paymentId: string }): Promise<{ won: true } | { won: false; reason: ClaimLoss | 'none' }> {
      const now = clock.now();
      const gone = await trx('link_holds').where({ link_id: linkKey, checkout_session_id: sessionKey }).del();
      if (!gone) return { won: false, reason: 'none' };
      changes?.afterCommit(trx);
      // A hold taken before a payment request's expiry is honoured after it (the customer's money
      // moved while they held a slot): the expiry closes the link to new checkouts only.
      const n = await trx('links')
        .where({ id: linkKey })
        .andWhere((b) => b.where('active', true).orWhere('inactive_reason', 'expired'))
        .whereNull('deleted_at')
        .andWhere('held_count', '>', 0)
        .andWhere((b) => b.whereNull('payment_limit').orWhere('paid_count', '<', trx.ref('payment_limit')))
        .update({ paid_count: trx.raw('paid_count + 1'), held_count: trx.raw('held_count - 1'), updated_at: now });
      if (n !== 1) {
        await trx('links').where({ id: linkKey }).andWhere('held_count', '>', 0).update({ held_count: trx.raw('held_count - 1') });
        const loss = await lossOf(trx, linkKey);
        return { won: false, reason: loss.reason === 'link_inactive' ? 'link_inactive' : 'limit_reached' };
      }
      await closeIfFull(trx, linkKey, by, now);
      return { won: true };
    },

    /** Gives back the slot a checkout session holds (a failure, an abandoned or expired checkout); false when it held none. */
    async releaseHold(trx: Trx, linkKey: number, sessionKey: number): Promise<boolean> {
      return dropHold(trx, linkKey, sessionKey);
    },

    /** Whether this checkout session still holds a slot of the link (its end not passed). */
    async holdsSlot(q: Queryable, linkKey: number, sessionKey: number): Promise<boolean> {
      return Boolean(await q('link_holds').where({ link_id: linkKey, checkout_session_id: sessionKey }).andWhere('expires_at', '>', clock.now()).first('id'));
    },

    /** When the first hold on the link ends (a slot may free up then); null without holds. */
    earliestHoldEnd: (linkKey: number) => earliestHoldEnd(db, linkKey),

    /**
     * Releases holds past their end, on the injected clock (the `links.release_holds` job), each in
     * its own transaction by a conditional DELETE, so two processes sweeping at once release every
     * hold once. Returns how many it released (at most `limit`).
     */
    async releaseLapsedHolds(limit = 200): Promise<number> {
      const now = clock.now();
      const due = (await db('link_holds').where('expires_at', '<=', now).orderBy('expires_at').limit(limit).select('link_id', 'checkout_session_id')) as { link_id: number; checkout_session_id: number }[];
      let released = 0;
      for (const r of due) {
        if (await inTransaction(db, (trx) => dropHold(trx, Number(r.link_id), Number(r.checkout_session_id), (b) => b.andWhere('expires_at', '<=', now)))) released++;
      }
      return released;
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

    /** Whether a live (not deleted) link sells this product (as its product, or as one of its items). */
    async sellsProduct(productKey: number): Promise<boolean> {
      if (await db('links').where({ product_id: productKey }).whereNull('deleted_at').first('id')) return true;
      return Boolean(await db('link_items as i').join('links as l', 'l.id', 'i.link_id').where('i.product_id', productKey).whereNull('l.deleted_at').first('i.id'));
    },

    /** The lines of these items links, in order, by link key. */
    itemRows: (keys: number[], q: Queryable = db) => itemRowsOf(q, keys),

    /** A link's public id by key (deleted links too); `q` is the caller's transaction when inside one. */
    /** The state of request links by key (payment requests read theirs in one query). */
    async requestLinks(q: Queryable, keys: number[]): Promise<Map<number, RequestLinkState>> {
      return rowsByKeys(q, 'links', keys, ['public_id', 'kind', 'name', 'description', 'amount', 'currency', 'payment_limit', 'paid_count', 'active', 'inactive_reason', 'customer_id', 'expires_at', 'views_count'], (r) => ({
        key: Number(r.id),
        id: String(r.public_id),
        name: String(r.name),
        description: r.description ?? null,
        amount: Number(r.amount),
        currency: String(r.currency),
        uses: Number(r.payment_limit ?? 1),
        paidCount: Number(r.paid_count),
        active: Boolean(r.active),
        inactiveReason: (r.inactive_reason ?? null) as InactiveReason | null,
        customerKey: r.customer_id === null || r.customer_id === undefined ? null : Number(r.customer_id),
        expiresAt: toDateOrNull(r.expires_at),
        views: Number(r.views_count ?? 0),
      }));
    },

    /**
     * A subquery of the merchant's request links' ids matching `f` (payment requests filter their
     * lists with it): paid (every use paid), expired (unpaid past expiry), pending (neither).
     */
    requestLinkIdsWhere(merchantKey: number, f: { customerKey?: number; state?: 'paid' | 'expired' | 'pending'; now: Date }) {
      const q = db('links').select('id').where({ merchant_id: merchantKey, kind: 'request' });
      if (f.customerKey !== undefined) q.andWhere('customer_id', f.customerKey);
      if (f.state === 'paid') q.whereRaw('paid_count >= payment_limit');
      else if (f.state) {
        q.whereRaw('paid_count < payment_limit');
        if (f.state === 'expired') q.andWhere('expires_at', '<=', f.now);
        else q.andWhere('expires_at', '>', f.now);
      }
      return q;
    },

    /** Closes a request link for good (its request was cancelled): no checkout can claim it again. */
    async closeRequest(trx: Trx, linkKey: number): Promise<void> {
      await trx('links').where({ id: linkKey, kind: 'request' }).update({ active: false, inactive_reason: 'manual', updated_at: clock.now() });
      changes?.afterCommit(trx);
    },

    async publicIdOf(q: Queryable, linkKey: number): Promise<string | null> {
      return (await q('links').where({ id: linkKey }).first('public_id'))?.public_id ?? null;
    },

    /** Public id, name and deletion of these links (deleted ones too), one query per batch. */
    async refsByKeys(keys: number[]): Promise<Map<number, LinkRef>> {
      return rowsByKeys(db, 'links', keys, ['public_id', 'name', 'deleted_at'], (r) => ({ id: r.public_id, name: r.name, deleted: Boolean(r.deleted_at) }));
    },

    /** Keys by public id (deleted links too; unknown ids are left out), one query; read through `q` inside a transaction. */
    async keysByIds(linkIds: string[], q: Queryable = db): Promise<Map<string, number>> {
      const ids = [...new Set(linkIds)];
      if (!ids.length) return new Map();
      const rows = (await q('links').whereIn('public_id', ids).select('id', 'public_id')) as { id: number | string; public_id: string }[];
      return new Map(rows.map((r) => [r.public_id, Number(r.id)]));
    },

    /** A link's key by its public id (deleted links too), or null; read through `q` inside a transaction. */
    async keyOf(linkId: string, q: Queryable = db): Promise<number | null> {
      const r = await q('links').where({ public_id: linkId }).first('id');
      return r ? Number(r.id) : null;
    },
  };
}

export type LinkState = ReturnType<typeof createLinkState>;
