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

/** Largest amount we accept in one payment, in minor units (fits comfortably in a JS number and a BIGINT). */
export const MAX_MINOR = 99_999_999_999;

export type ParsedAmount = { ok: true; minor: number } | { ok: false; code: 'invalid_amount' | 'too_many_decimals' | 'amount_too_small' | 'amount_too_large'; message: string };

/**
 * Parses a decimal string typed by a person ("12.50", "12,50", "1 000") into minor units of `currency`.
 * Refuses more decimals than the currency has (no silent rounding).
 */
export function parseDecimalAmount(input: string, currency: string): ParsedAmount {
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
  if (whole.length > 15) return { ok: false, code: 'amount_too_large', message: 'That amount is too large.' };
  const minor = Number(whole) * 10 ** digits + Number(frac.padEnd(digits, '0') || '0');
  if (minor <= 0) return { ok: false, code: 'amount_too_small', message: 'The amount must be more than zero.' };
  if (minor > MAX_MINOR) return { ok: false, code: 'amount_too_large', message: 'That amount is too large.' };
  return { ok: true, minor };
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
