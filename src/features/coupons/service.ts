/**
 * Coupons (promo codes): a percent or a fixed amount off, a validity window and a maximum number of
 * redemptions, exact under concurrency like a link's payment limit.
 *
 *   quote    → what a code takes off an amount (pay page "Apply", and again at checkout): a clear
 *              reason when it cannot (unknown, inactive, not yet valid, expired, used up, another
 *              currency, worth the whole payment). Reading only: it decides nothing.
 *   hold     → a checkout that applied the code holds one redemption while it is open (in checkout's
 *              start transaction): one conditional UPDATE `redeemed_count + held_count <
 *              max_redemptions` (plus active, in its window) decides, then a `held` row names the
 *              session. Lost → nothing is written and the customer is told the code is used up.
 *   redeem   → the payment was authorized (checkout's claim transaction): a `held` row becomes
 *              `redeemed` (held − 1, redeemed + 1 in one statement); a hold that lapsed meanwhile
 *              claims afresh under the same condition; lost → the payment is voided like a payment
 *              that lost its link slot.
 *   release  → the checkout failed, its capture failed, or the link's claim was lost: the row goes
 *              to `released` and its counter down. `coupons.release_holds` (per minute) releases
 *              holds past their end (the checkout's expiry).
 *   Invariant: held_count + redeemed_count = the coupon's rows in `held` + `redeemed`, because every
 *   counter move follows the row's own conditional status change in the same transaction.
 *   Refunds never give a redemption back (like a link's slot).
 *
 * Never read-check-write: every decision is one conditional UPDATE.
 */
import { z } from 'zod';
import type { Db, Queryable, Trx } from '../../core/db.ts';
import { inTransaction, isUniqueViolation, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { ChangeFeed } from '../../core/changes.ts';
import type { JobQueue } from '../../core/jobs.ts';
import { publicId } from '../../core/ids.ts';
import { ConflictError, NotFoundError, ValidationError, type FieldError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { MAX_MINOR, formatMoney } from '../../core/money.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import { currencySchema } from '../merchants/index.ts';

export interface Coupon {
  key: number;
  id: string;
  merchantKey: number;
  code: string;
  /** Percent off (10.5 = 10.5 %), or null for an amount off. */
  percentOff: number | null;
  amountOff: number | null;
  currency: string | null;
  validFrom: Date | null;
  validUntil: Date | null;
  maxRedemptions: number | null;
  redeemedCount: number;
  /** Redemptions held by checkouts under way. */
  heldCount: number;
  active: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export type RedemptionStatus = 'held' | 'redeemed' | 'released';

export interface Redemption {
  key: number;
  id: string;
  couponKey: number;
  paymentId: string | null;
  status: RedemptionStatus;
  amountBefore: number;
  amountOff: number;
  currency: string;
  createdAt: Date;
  redeemedAt: Date | null;
  releasedAt: Date | null;
}

/** Why a code cannot be used (the pay page shows the message by the `coupon` field). */
export type CouponRefusal = 'coupon_invalid' | 'coupon_not_yet_valid' | 'coupon_expired' | 'coupon_used_up' | 'coupon_wrong_currency' | 'coupon_too_large';

export type Quote = { ok: true; coupon: Coupon; amountBefore: number; amountOff: number; total: number } | { ok: false; code: CouponRefusal; message: string };

/** The most a code may be: 40 letters, digits, `-` and `_`. */
export const CODE_MAX = 40;
const CODE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

/** A code as customers type it: case and surrounding spaces do not matter. */
export const codeKey = (code: string): string => code.trim().toUpperCase();

const instantSchema = (field: string) =>
  z.iso.datetime({ offset: true, error: `${field} must be an ISO 8601 date-time such as 2026-12-31T23:59:00Z.` }).transform((s) => new Date(s)).nullish();

const base = {
  code: z
    .string({ error: 'Enter a code.' })
    .trim()
    .min(1, 'Enter a code.')
    .max(CODE_MAX, `A code can have at most ${CODE_MAX} characters.`)
    .refine((c) => CODE.test(c), 'Use letters, digits, hyphens and underscores only, starting with a letter or digit.'),
  percent_off: z
    .number({ error: 'percent_off must be a number from 0.01 to 99.99.' })
    .min(0.01, 'percent_off must be at least 0.01.')
    .max(99.99, 'percent_off must be under 100: Paylink does not take payments of nothing.')
    .refine((n) => Number.isInteger(Math.round(n * 100)) && Math.abs(n * 100 - Math.round(n * 100)) < 1e-6, 'percent_off can have at most two decimals.')
    .nullish(),
  amount_off: z
    .number({ error: 'amount_off must be a whole number of minor units, e.g. 500 for 5.00.' })
    .int('amount_off must be a whole number of minor units, e.g. 500 for 5.00.')
    .positive('amount_off must be more than zero.')
    .max(MAX_MINOR, 'That amount is too large.')
    .nullish(),
  currency: currencySchema.nullish(),
  valid_from: instantSchema('valid_from'),
  valid_until: instantSchema('valid_until'),
  max_redemptions: z
    .number({ error: 'max_redemptions must be a whole number from 1 to 1000000, or null for no maximum.' })
    .int('max_redemptions must be a whole number.')
    .min(1, 'max_redemptions must be at least 1.')
    .max(1_000_000, 'max_redemptions can be at most 1000000.')
    .nullish(),
  active: z.boolean({ error: 'active must be true or false.' }).optional(),
};
export const couponCreateSchema = z.object(base);
export const couponUpdateSchema = z.object({ ...base, code: base.code.optional() });
export type CouponInput = z.infer<typeof couponUpdateSchema>;

const fromRow = (r: any): Coupon => ({
  key: Number(r.id),
  id: r.public_id,
  merchantKey: Number(r.merchant_id),
  code: r.code,
  percentOff: r.percent_off_bp === null || r.percent_off_bp === undefined ? null : Number(r.percent_off_bp) / 100,
  amountOff: r.amount_off === null || r.amount_off === undefined ? null : Number(r.amount_off),
  currency: r.currency ?? null,
  validFrom: toDateOrNull(r.valid_from),
  validUntil: toDateOrNull(r.valid_until),
  maxRedemptions: r.max_redemptions === null || r.max_redemptions === undefined ? null : Number(r.max_redemptions),
  redeemedCount: Number(r.redeemed_count),
  heldCount: Number(r.held_count),
  active: Boolean(r.active),
  createdAt: toDate(r.created_at),
  updatedAt: toDate(r.updated_at),
});

const redemptionFrom = (r: any): Redemption => ({
  key: Number(r.id),
  id: r.public_id,
  couponKey: Number(r.coupon_id),
  paymentId: r.payment_ref ?? null,
  status: r.status,
  amountBefore: Number(r.amount_before),
  amountOff: Number(r.amount_off),
  currency: r.currency,
  createdAt: toDate(r.created_at),
  redeemedAt: toDateOrNull(r.redeemed_at),
  releasedAt: toDateOrNull(r.released_at),
});

export function couponJson(c: Coupon) {
  return {
    id: c.id,
    object: 'coupon',
    code: c.code,
    percent_off: c.percentOff,
    amount_off: c.amountOff,
    currency: c.currency,
    valid_from: c.validFrom?.toISOString() ?? null,
    valid_until: c.validUntil?.toISOString() ?? null,
    max_redemptions: c.maxRedemptions,
    redeemed_count: c.redeemedCount,
    /** Held by checkouts under way: they count against max_redemptions until they pay or lapse. */
    held_count: c.heldCount,
    active: c.active,
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
  };
}

export function redemptionJson(r: Redemption, couponId: string) {
  return {
    id: r.id,
    object: 'coupon_redemption',
    coupon_id: couponId,
    payment_id: r.paymentId,
    status: r.status,
    amount_before: r.amountBefore,
    amount_off: r.amountOff,
    currency: r.currency,
    created_at: r.createdAt.toISOString(),
    redeemed_at: r.redeemedAt?.toISOString() ?? null,
    released_at: r.releasedAt?.toISOString() ?? null,
  };
}

/** "10% off", "€5.00 off". */
export function discountLabel(c: Pick<Coupon, 'percentOff' | 'amountOff' | 'currency'>): string {
  if (c.percentOff !== null) return `${c.percentOff.toLocaleString('en', { maximumFractionDigits: 2 })}% off`;
  return `${formatMoney(c.amountOff ?? 0, c.currency ?? 'EUR')} off`;
}

/** What a coupon takes off `amount`, in minor units: a percentage rounds half up (exact, in BigInt); an amount off is capped at the amount. */
export function discountOf(c: Pick<Coupon, 'percentOff' | 'amountOff'>, amount: number): number {
  if (c.percentOff !== null) {
    const bp = BigInt(Math.round(c.percentOff * 100));
    return Number((BigInt(amount) * bp + 5_000n) / 10_000n);
  }
  return Math.min(c.amountOff ?? 0, amount);
}

/** The redemption a checkout holds, as checkout's start transaction asks for it. */
export interface HoldRequest {
  couponKey: number;
  merchantKey: number;
  sessionKey: number;
  amountBefore: number;
  amountOff: number;
  currency: string;
  expiresAt: Date;
}

/** A coupon's discount and window, merged from input and what is stored. */
interface Terms {
  percent_off: number | null;
  amount_off: number | null;
  currency: string | null;
  valid_from: Date | null;
  valid_until: Date | null;
}

export interface CouponServiceDeps {
  db: Db;
  clock: Clock;
  jobs?: JobQueue;
  changes?: ChangeFeed;
}

/** Batch size of the lapsed-holds sweep. */
const RELEASE_BATCH = 500;

export function createCouponService({ db, clock, jobs, changes }: CouponServiceDeps) {
  const scoped = (q: Queryable, merchantKey: number) => q('coupons').where({ merchant_id: merchantKey }).whereNull('deleted_at');
  /** A claim is possible while active, in its window and under its maximum: the condition every hold and claim uses. */
  const claimable = (now: Date) => (b: any) =>
    b
      .where({ active: true })
      .whereNull('deleted_at')
      .andWhere((w: any) => w.whereNull('valid_from').orWhere('valid_from', '<=', now))
      .andWhere((w: any) => w.whereNull('valid_until').orWhere('valid_until', '>', now))
      .andWhere((w: any) => w.whereNull('max_redemptions').orWhereRaw('redeemed_count + held_count < max_redemptions'));

  /** The discount and window columns of a checked coupon. */
  const columnsOf = (c: Terms) => ({
    percent_off_bp: c.percent_off === null ? null : Math.round(c.percent_off * 100),
    amount_off: c.amount_off,
    currency: c.currency,
    valid_from: c.valid_from,
    valid_until: c.valid_until,
  });

  /** Cross-field rules of a coupon (after merging an update onto what is stored). */
  function check(c: Terms): void {
    const errors: FieldError[] = [];
    if (c.percent_off === null && c.amount_off === null) errors.push({ field: 'percent_off', code: 'discount_required', message: 'Give percent_off or amount_off (with currency).' });
    if (c.percent_off !== null && c.amount_off !== null) errors.push({ field: 'amount_off', code: 'conflicting_fields', message: 'Give percent_off or amount_off, not both.' });
    if (c.amount_off !== null && !c.currency) errors.push({ field: 'currency', code: 'currency_required', message: 'An amount off needs its currency.' });
    if (c.percent_off !== null && c.currency) errors.push({ field: 'currency', code: 'conflicting_fields', message: 'A percentage applies in every currency: leave currency out.' });
    if (c.valid_from && c.valid_until && c.valid_until.getTime() <= c.valid_from.getTime()) errors.push({ field: 'valid_until', code: 'invalid_range', message: 'valid_until must be after valid_from.' });
    if (errors.length) throw new ValidationError(errors);
  }

  const codeTaken = () => new ConflictError('code_taken', 'You already have a coupon with this code.', [{ field: 'code', code: 'code_taken', message: 'You already have a coupon with this code. Choose another.' }]);

  /** Gives one held or redeemed redemption back: the row's conditional status change decides, then its counter. */
  async function releaseRow(trx: Trx, where: Record<string, unknown>, now: Date): Promise<boolean> {
    const row = await trx('coupon_redemptions').where(where).whereIn('status', ['held', 'redeemed']).first('id', 'coupon_id', 'status');
    if (!row) return false;
    const n = await trx('coupon_redemptions').where({ id: row.id, status: row.status }).update({ status: 'released', released_at: now });
    if (!n) return false;
    const counter = row.status === 'held' ? 'held_count' : 'redeemed_count';
    await trx('coupons').where({ id: row.coupon_id }).andWhere(counter, '>', 0).update({ [counter]: trx.raw(`${counter} - 1`) });
    changes?.afterCommit(trx);
    return true;
  }

  const service = {
    async get(merchantKey: number, id: string): Promise<Coupon> {
      const r = await scoped(db, merchantKey).andWhere({ public_id: id }).first();
      if (!r) throw new NotFoundError('No such coupon.');
      return fromRow(r);
    },

    async list(merchantKey: number, rawQuery: unknown = {}): Promise<Page<Coupon>> {
      const q = parseBody(listQuerySchema, rawQuery);
      let afterKey: number | null = null;
      if (q.starting_after) {
        const anchor = await scoped(db, merchantKey).andWhere({ public_id: q.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of your coupons.' }]);
        afterKey = anchor.id;
      }
      return pageByIdDesc(scoped(db, merchantKey).select('*'), { limit: q.limit, afterKey }, (rows) => rows.map(fromRow));
    },

    async create(merchantKey: number, raw: unknown): Promise<Coupon> {
      const input = parseBody(couponCreateSchema, raw);
      const merged = { percent_off: input.percent_off ?? null, amount_off: input.amount_off ?? null, currency: input.currency ?? null, valid_from: input.valid_from ?? null, valid_until: input.valid_until ?? null };
      check(merged);
      const now = clock.now();
      const id = publicId('cpn');
      try {
        await db('coupons').insert({
          public_id: id,
          merchant_id: merchantKey,
          code: input.code,
          code_key: codeKey(input.code),
          live_code_key: codeKey(input.code),
          ...columnsOf(merged),
          max_redemptions: input.max_redemptions ?? null,
          active: input.active ?? true,
          created_at: now,
          updated_at: now,
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw codeTaken();
        throw err;
      }
      return service.get(merchantKey, id);
    },

    /** Any field may change; redemptions already made keep the discount they were made with. */
    async update(merchantKey: number, id: string, raw: unknown): Promise<Coupon> {
      const coupon = await service.get(merchantKey, id);
      const input = parseBody(couponUpdateSchema, raw);
      const has = (k: keyof CouponInput) => Object.prototype.hasOwnProperty.call(input, k) && input[k] !== undefined;
      // A switch between percent and amount replaces the other kind.
      const percent = has('percent_off') ? input.percent_off ?? null : has('amount_off') && input.amount_off !== null ? null : coupon.percentOff;
      const amount = has('amount_off') ? input.amount_off ?? null : has('percent_off') && input.percent_off !== null ? null : coupon.amountOff;
      const currency = has('currency') ? input.currency ?? null : amount === null ? null : coupon.currency;
      const merged = { percent_off: percent, amount_off: amount, currency, valid_from: has('valid_from') ? input.valid_from ?? null : coupon.validFrom, valid_until: has('valid_until') ? input.valid_until ?? null : coupon.validUntil };
      check(merged);
      const row: Record<string, unknown> = { ...columnsOf(merged), updated_at: clock.now() };
      if (input.code !== undefined) Object.assign(row, { code: input.code, code_key: codeKey(input.code), live_code_key: codeKey(input.code) });
      if (has('max_redemptions')) row.max_redemptions = input.max_redemptions ?? null;
      if (input.active !== undefined) row.active = input.active;
      try {
        await db('coupons').where({ id: coupon.key }).update(row);
      } catch (err) {
        if (isUniqueViolation(err)) throw codeTaken();
        throw err;
      }
      return service.get(merchantKey, id);
    },

    /** Soft delete: its redemptions stay listed on their payments; the code is free again. */
    async remove(merchantKey: number, id: string): Promise<void> {
      const coupon = await service.get(merchantKey, id);
      const now = clock.now();
      await db('coupons').where({ id: coupon.key }).update({ deleted_at: now, active: false, live_code_key: null, updated_at: now });
    },

    async redemptions(merchantKey: number, id: string, rawQuery: unknown = {}): Promise<Page<Redemption>> {
      const coupon = await service.get(merchantKey, id);
      const q = parseBody(listQuerySchema, rawQuery);
      let afterKey: number | null = null;
      if (q.starting_after) {
        const anchor = await db('coupon_redemptions').where({ coupon_id: coupon.key, public_id: q.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of this coupon’s redemptions.' }]);
        afterKey = anchor.id;
      }
      return pageByIdDesc(db('coupon_redemptions').where({ coupon_id: coupon.key }).select('*'), { limit: q.limit, afterKey }, (rows) => rows.map(redemptionFrom));
    },

    /** What `code` takes off `amount` in `currency` for this merchant now, or why it cannot. */
    /** `wholeAllowed`: something else is paid with it (a subscription's first period), so the code may take all of `amount` off. */
    async quote(merchantKey: number, code: string, amount: number, currency: string, opts: { wholeAllowed?: boolean } = {}): Promise<Quote> {
      const key = codeKey(code);
      const r = key && key.length <= CODE_MAX ? await scoped(db, merchantKey).andWhere({ code_key: key }).first() : null;
      if (!r || !r.active) return { ok: false, code: 'coupon_invalid', message: 'This code is not valid. Check it and try again.' };
      const c = fromRow(r);
      const now = clock.now().getTime();
      if (c.validFrom && c.validFrom.getTime() > now) return { ok: false, code: 'coupon_not_yet_valid', message: 'This code is not valid yet.' };
      if (c.validUntil && c.validUntil.getTime() <= now) return { ok: false, code: 'coupon_expired', message: 'This code has expired.' };
      if (c.maxRedemptions !== null && c.redeemedCount + c.heldCount >= c.maxRedemptions) return { ok: false, code: 'coupon_used_up', message: 'This code has been used up.' };
      if (c.amountOff !== null && c.currency !== currency) return { ok: false, code: 'coupon_wrong_currency', message: `This code only applies to payments in ${c.currency}.` };
      const amountOff = Math.min(amount, discountOf(c, amount));
      if (amountOff >= amount && !opts.wholeAllowed) return { ok: false, code: 'coupon_too_large', message: 'This code is worth the whole payment, so it cannot be used here.' };
      return { ok: true, coupon: c, amountBefore: amount, amountOff, total: amount - amountOff };
    },

    /**
     * Holds one redemption for a checkout, in its start transaction: one conditional UPDATE decides.
     * False when the coupon is used up (or closed) meanwhile: the caller writes nothing.
     */
    async hold(trx: Trx, h: HoldRequest): Promise<boolean> {
      const now = clock.now();
      const n = await trx('coupons').where({ id: h.couponKey, merchant_id: h.merchantKey }).andWhere(claimable(now)).update({ held_count: trx.raw('held_count + 1'), updated_at: now });
      if (n !== 1) return false;
      await trx('coupon_redemptions').insert({
        public_id: publicId('red'),
        coupon_id: h.couponKey,
        merchant_id: h.merchantKey,
        checkout_session_id: h.sessionKey,
        status: 'held',
        amount_before: h.amountBefore,
        amount_off: h.amountOff,
        currency: h.currency,
        expires_at: h.expiresAt,
        created_at: now,
      });
      changes?.afterCommit(trx);
      return true;
    },

    /**
     * The session's payment was authorized: its redemption counts (in the claim transaction).
     * `none`: the checkout applied no code. A hold that lapsed claims afresh (the window and the
     * maximum decide now); `lost` when it cannot.
     */
    async redeem(trx: Trx, sessionKey: number, paymentId: string): Promise<'won' | 'lost' | 'none'> {
      const now = clock.now();
      const row = await trx('coupon_redemptions').where({ checkout_session_id: sessionKey }).first('id', 'coupon_id', 'status');
      if (!row) return 'none';
      if (row.status === 'redeemed') return 'won';
      if (row.status === 'held') {
        const n = await trx('coupon_redemptions').where({ id: row.id, status: 'held' }).update({ status: 'redeemed', payment_ref: paymentId, redeemed_at: now });
        if (n) {
          await trx('coupons').where({ id: row.coupon_id }).update({ held_count: trx.raw('held_count - 1'), redeemed_count: trx.raw('redeemed_count + 1'), updated_at: now });
          changes?.afterCommit(trx);
          return 'won';
        }
      }
      // Released (its hold lapsed): claim like a new redemption.
      const n = await trx('coupons').where({ id: row.coupon_id }).andWhere(claimable(now)).update({ redeemed_count: trx.raw('redeemed_count + 1'), updated_at: now });
      if (n !== 1) return 'lost';
      await trx('coupon_redemptions').where({ id: row.id }).update({ status: 'redeemed', payment_ref: paymentId, redeemed_at: now, released_at: null });
      changes?.afterCommit(trx);
      return 'won';
    },

    /** Gives back the redemption a checkout session holds or redeemed (failure, a lost claim, a failed capture). */
    async release(trx: Trx, sessionKey: number): Promise<boolean> {
      return releaseRow(trx, { checkout_session_id: sessionKey }, clock.now());
    },

    /** Releases holds past their end, a batch at a time; how many. */
    async releaseLapsed(): Promise<number> {
      const now = clock.now();
      let total = 0;
      for (;;) {
        const rows = (await db('coupon_redemptions').where({ status: 'held' }).andWhere('expires_at', '<=', now).orderBy('expires_at').limit(RELEASE_BATCH).select('id')) as { id: number }[];
        if (!rows.length) return total;
        for (const r of rows) if (await inTransaction(db, (trx) => releaseRow(trx, { id: r.id, status: 'held' }, now))) total++;
        if (rows.length < RELEASE_BATCH) return total;
      }
    },

    /** Redemptions by checkout session key (a payment's discount), in `q` when given. */
    async bySessions(keys: number[], q: Queryable = db): Promise<Map<number, Redemption>> {
      const out = new Map<number, Redemption>();
      for (let i = 0; i < keys.length; i += 500) {
        const rows = await q('coupon_redemptions').whereIn('checkout_session_id', keys.slice(i, i + 500));
        for (const r of rows) out.set(Number(r.checkout_session_id), redemptionFrom(r));
      }
      return out;
    },
  };

  jobs?.define('coupons.release_holds', async () => {
    await service.releaseLapsed();
  });

  return service;
}

export type CouponService = ReturnType<typeof createCouponService>;
