// Money is integer minor units + an ISO 4217 currency, everywhere. These helpers convert at the edges.
const digitsCache = new Map<string, number>();

/** Minor-unit digits of a currency: 2 for EUR, 0 for JPY, 3 for KWD. */
export function currencyDigits(currency: string): number {
  let d = digitsCache.get(currency);
  if (d === undefined) {
    d = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
    digitsCache.set(currency, d);
  }
  return d;
}

/**
 * The storage limit of one amount, in minor units (fits comfortably in a JS number and a BIGINT). Not
 * the limit a person meets: that is maxAmount(currency), which is never above it.
 */
export const MAX_MINOR = 99_999_999_999;

/** The default ceiling of one amount: one million of the currency's major units (€1,000,000.00, ¥1,000,000, 1,000,000.000 KWD). */
export const DEFAULT_MAX_MAJOR = 1_000_000;

/** Ceilings set by PAYLINK_MAX_AMOUNT: `all` in major units for every currency, `byCurrency` in minor units. */
export interface MaxAmounts {
  all: number | null;
  byCurrency: Record<string, number>;
}

const NO_OVERRIDES: MaxAmounts = { all: null, byCurrency: {} };
let ceilings: MaxAmounts = NO_OVERRIDES;

/**
 * Sets the ceilings for this process (runtime.ts, from the configuration, at start). One process
 * has one configuration, so the amount checks everywhere (forms, API, pay pages, imports) read it
 * here rather than each being handed it.
 */
export function configureMaxAmounts(next: MaxAmounts | null | undefined): void {
  ceilings = next ?? NO_OVERRIDES;
}

/** The most one amount may be in `currency`, in minor units: a payment, a link's or product's price, a request. */
export function maxAmount(currency: string): number {
  const code = currency.toUpperCase();
  const own = ceilings.byCurrency[code];
  if (own !== undefined) return own;
  return Math.min(MAX_MINOR, Math.round((ceilings.all ?? DEFAULT_MAX_MAJOR) * 10 ** currencyDigits(code)));
}

/** "The amount can be at most €1,000,000.00." */
export function amountTooLargeMessage(currency: string): string {
  return `The amount can be at most ${formatMoney(maxAmount(currency), currency.toUpperCase())}.`;
}

/** A field error (`amount_too_large`, formatted ceiling) when `minor` is over the currency's ceiling, else null. */
export function amountCeilingError(minor: number, currency: string, field = 'amount'): { field: string; code: string; message: string } | null {
  return minor > maxAmount(currency) ? { field, code: 'amount_too_large', message: amountTooLargeMessage(currency) } : null;
}

const CURRENCY_CODES = new Set(Intl.supportedValuesOf('currency'));

/**
 * PAYLINK_MAX_AMOUNT: comma-separated ceilings in major units, a bare number for every currency
 * and `CODE=number` for one: `250000`, `EUR=50000,JPY=5000000`, `100000,KWD=30000`. Each is at
 * most the storage limit and has no more decimals than its currency.
 */
export function parseMaxAmounts(spec: string): { ok: true; value: MaxAmounts } | { ok: false; message: string } {
  const value: MaxAmounts = { all: null, byCurrency: {} };
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(?:([A-Za-z]{3})\s*=\s*)?(\d+(?:\.\d+)?)$/.exec(part);
    if (!m) return { ok: false, message: `"${part}" is not a ceiling: give major units, such as 250000 (every currency) or EUR=50000` };
    const [, rawCode, amount] = m;
    if (!rawCode) {
      const major = Number(amount);
      if (!(major > 0) || !Number.isInteger(major)) return { ok: false, message: `the ceiling for every currency must be a whole number of major units above 0 (got ${amount})` };
      value.all = major;
      continue;
    }
    const code = rawCode.toUpperCase();
    if (!CURRENCY_CODES.has(code)) return { ok: false, message: `${rawCode} is not an ISO 4217 currency code` };
    const parsed = parseDecimal(amount, code);
    if (!parsed.ok) return { ok: false, message: `${code}=${amount}: ${parsed.message}` };
    value.byCurrency[code] = parsed.minor;
  }
  return { ok: true, value };
}

export type ParsedAmount = { ok: true; minor: number } | { ok: false; code: 'invalid_amount' | 'too_many_decimals' | 'amount_too_small' | 'amount_too_large'; message: string };

/** A decimal string → minor units, held only to the storage limit (parseDecimalAmount adds the ceiling). */
function parseDecimal(input: string, currency: string): ParsedAmount {
  const digits = currencyDigits(currency);
  const s = input.trim().replace(/[\s\u00a0]/g, '').replace(',', '.');
  if (!/^\d+(\.\d+)?$/.test(s)) return { ok: false, code: 'invalid_amount', message: 'Enter an amount such as 12.50.' };
  const [whole, frac = ''] = s.split('.');
  if (frac.length > digits) {
    return {
      ok: false,
      code: 'too_many_decimals',
      message: digits === 0 ? `${currency} amounts have no decimals.` : `${currency} amounts have at most ${digits} decimal${digits === 1 ? '' : 's'}.`,
    };
  }
  const minor = whole.length > 15 ? Infinity : Number(whole) * 10 ** digits + Number(frac.padEnd(digits, '0') || '0');
  if (minor <= 0) return { ok: false, code: 'amount_too_small', message: 'The amount must be more than zero.' };
  if (minor > MAX_MINOR) return { ok: false, code: 'amount_too_large', message: 'That amount is too large.' };
  return { ok: true, minor };
}

/**
 * Parses a decimal string typed by a person ("12.50", "12,50", "1 000") into minor units of `currency`.
 * Refuses more decimals than the currency has (no silent rounding), and more than the currency's
 * ceiling (maxAmount), saying the ceiling: "The amount can be at most €1,000,000.00."
 */
export function parseDecimalAmount(input: string, currency: string, opts: { ceiling?: boolean } = {}): ParsedAmount {
  const parsed = parseDecimal(input, currency);
  // `ceiling: false`: bounded by something else (a refund by what is left of its payment, which may
  // predate a lower ceiling).
  if (opts.ceiling === false) return parsed;
  if (parsed.ok ? parsed.minor > maxAmount(currency) : parsed.code === 'amount_too_large') {
    return { ok: false, code: 'amount_too_large', message: amountTooLargeMessage(currency) };
  }
  return parsed;
}

/** Minor units → "12.50" (no symbol), as a form field shows it. */
export function toDecimalString(minor: number, currency: string): string {
  const digits = currencyDigits(currency);
  if (digits === 0) return String(minor);
  const s = String(Math.abs(minor)).padStart(digits + 1, '0');
  return `${minor < 0 ? '-' : ''}${s.slice(0, -digits)}.${s.slice(-digits)}`;
}

const formatters = new Map<string, Intl.NumberFormat>();

const formatted = new Map<string, string>();

/** Minor units → "€12.50" for display (memoised: pay pages show the same few amounts over and over). */
export function formatMoney(minor: number, currency: string, locale = 'en'): string {
  const memo = `${locale}|${currency}|${minor}`;
  const hit = formatted.get(memo);
  if (hit !== undefined) return hit;
  const key = `${locale}|${currency}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.NumberFormat(locale, { style: 'currency', currency });
    formatters.set(key, f);
  }
  const out = f.format(minor / 10 ** currencyDigits(currency));
  if (formatted.size >= 5_000) formatted.clear();
  formatted.set(memo, out);
  return out;
}
