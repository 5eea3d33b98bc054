/**
 * The coupon field of a pay page (links with `allow_coupons`). "Apply" is a submit button of the pay
 * form itself (no JavaScript needed): the server quotes the code and renders the page again with the
 * new total; paying quotes it once more, and checkout holds a redemption atomically — the quote
 * decides nothing. An empty field is no coupon.
 */
import type { AppDeps } from '../../web/deps.ts';
import { formatMoney } from '../../core/money.ts';
import { CODE_MAX, discountLabel } from '../coupons/index.ts';
import type { Discount } from '../checkout/index.ts';

type Deps = Pick<AppDeps, 'coupons'>;

/** What the pay page shows of an applied code. */
export interface AppliedCoupon {
  code: string;
  /** "10% off". */
  label: string;
  /** "−€5.00". */
  off: string;
  /** "€45.00": the new total (the Pay button says it too). */
  total: string;
}

export type CouponStep =
  | { kind: 'none' }
  | { kind: 'applied'; view: AppliedCoupon; coupon: { key: number; discount: Discount }; total: number }
  | { kind: 'refused'; message: string };

/** The `coupon` field of a posted pay form, as typed (trimmed, bounded). */
export const postedCoupon = (raw: Record<string, unknown>): string => (typeof raw.coupon === 'string' ? raw.coupon.trim().slice(0, CODE_MAX + 10) : '');

/** Quotes the posted code against `amount` (the total before it) for this page. */
/**
 * `amount` is what the code may take money off; `alongside` is charged with it, never discounted (a
 * subscription plan's first period: a plan is billed at its price, so a coupon takes money off the
 * order's one-time part only). The totals include it.
 */
export async function couponStep(rt: Deps, merchantKey: number, allow: boolean, code: string, amount: number, currency: string, alongside = 0): Promise<CouponStep> {
  if (!allow || !code) return { kind: 'none' };
  if (amount === 0 && alongside > 0) return { kind: 'refused', message: 'Coupon codes take money off one-time items, and this order has none: a subscription is billed at its price.' };
  const q = await rt.coupons.quote(merchantKey, code, amount, currency, { wholeAllowed: alongside > 0 });
  if (!q.ok) return { kind: 'refused', message: q.message };
  const total = q.total + alongside;
  return {
    kind: 'applied',
    view: { code: q.coupon.code, label: discountLabel(q.coupon), off: `−${formatMoney(q.amountOff, currency)}`, total: formatMoney(total, currency) },
    coupon: { key: q.coupon.key, discount: { couponId: q.coupon.id, code: q.coupon.code, amountBefore: q.amountBefore + alongside, amountOff: q.amountOff } },
    total,
  };
}
