// What a customer types on a pay page, and what a pay-page URL may look like.
import { z } from 'zod';
import { currencyDigits, maxAmount, parseDecimalAmount, toDecimalString } from '../../core/money.ts';
import { emailSchema } from '../merchants/index.ts';

/** Lowercase handle shape (the signup rules, minus the reserved words, which never reach the database). */
const HANDLE = /^[a-z][a-z0-9-]{2,39}$/;
/** Lowercase link path shape (links/schemas.ts pathSchema). */
const PATH = /^[a-z][a-z0-9-]{0,63}$/;
const AMOUNT = /^\d+(\.\d+)?$/;

export const isHandleShaped = (lower: string): boolean => HANDLE.test(lower);
export const isPathShaped = (lower: string): boolean => PATH.test(lower);
/** `/acme/12.50`: the second segment is an amount when it starts with a digit (paths never do). */
export const isAmountSegment = (segment: string): boolean => /^\d/.test(segment);

/** The most a customer may type on an open-amount page: the currency's ceiling (PAYLINK_MAX_AMOUNT). */
export function maxOpenAmount(currency: string): number {
  return maxAmount(currency);
}

/**
 * The amount in a `/:handle/12.50` URL, in minor units, and its canonical spelling.
 * `12.50` and `12` render as they are; `12.5` and `012.50` answer 301 to `12.50`; more decimals
 * than the currency has (`12.505` in EUR, `1000.0` in JPY), zero or more than maxOpenAmount → null (404).
 */
export function parseAmountSegment(segment: string, currency: string): { minor: number; canonical: string; isCanonical: boolean } | null {
  if (!AMOUNT.test(segment) || segment.length > 24) return null;
  const digits = currencyDigits(currency);
  const [whole, frac = ''] = segment.split('.');
  if (frac.length > digits) return null;
  const minor = Number(whole) * 10 ** digits + Number(frac.padEnd(digits, '0') || '0');
  if (!Number.isSafeInteger(minor) || minor <= 0 || minor > maxOpenAmount(currency)) return null;
  const canonical = toDecimalString(minor, currency);
  const isCanonical = segment === canonical || (!segment.includes('.') && segment === String(Number(whole)));
  return { minor, canonical, isCanonical };
}

const noControl = (s: string) => !/[\u0000-\u001f\u007f\u2028\u2029]/.test(s);

export const checkoutNameSchema = z
  .string({ error: 'Enter your name.' })
  .trim()
  .min(1, 'Enter your name.')
  .max(120, 'Keep your name under 120 characters.')
  .refine(noControl, 'Your name cannot contain line breaks or control characters.');

export const checkoutEmailSchema = z
  .string({ error: 'Enter your email address.' })
  .trim()
  .min(1, 'Enter your email address.')
  .pipe(emailSchema);

export const checkoutFormSchema = z.object({ name: checkoutNameSchema, email: checkoutEmailSchema });

export interface CheckoutForm {
  name: string;
  email: string;
  /** Minor units; only for open-amount pages. */
  amount?: number;
}

/** Validates a pay page's form. Returns the values, or a message per field. */
export function parseCheckoutForm(body: unknown, open: { currency: string } | null): { ok: true; value: CheckoutForm } | { ok: false; errors: Record<string, string> } {
  const raw = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
  const errors: Record<string, string> = {};
  const parsed = checkoutFormSchema.safeParse({ name: raw.name ?? '', email: raw.email ?? '' });
  if (!parsed.success) for (const i of parsed.error.issues) errors[String(i.path[0])] ??= i.message;
  let amount: number | undefined;
  if (open) {
    const a = raw.amount;
    if (typeof a !== 'string' || !a.trim()) {
      errors.amount = 'Enter the amount you want to pay.';
    } else {
      const r = parseDecimalAmount(a.slice(0, 40), open.currency);
      // Over the ceiling: "The amount can be at most €1,000,000.00." (parseDecimalAmount).
      if (!r.ok) errors.amount = r.message;
      else amount = r.minor;
    }
  }
  if (!parsed.success || Object.keys(errors).length) return { ok: false, errors };
  return { ok: true, value: { ...parsed.data, ...(amount !== undefined ? { amount } : {}) } };
}
