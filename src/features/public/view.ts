// Small view helpers shared by the pay page and the receipt.
import type { Merchant } from '../merchants/index.ts';
import { payBranding } from '../branding/index.ts';

/** What customer-facing pages show of a merchant. */
export function merchantView(m: Merchant) {
  // `look`: the merchant's logo, colours and button (a link's page may override it: pageView's `look`).
  return { name: m.name, handle: m.handle, initial: (Array.from(m.name.trim())[0] ?? '?').toUpperCase(), look: payBranding(m) };
}

const symbols = new Map<string, string>();

/** "€" for EUR, "US$"/"$" for USD…: the prefix of an amount field. */
export function currencySymbol(currency: string): string {
  let s = symbols.get(currency);
  if (s === undefined) {
    s = new Intl.NumberFormat('en', { style: 'currency', currency }).formatToParts(0).find((p) => p.type === 'currency')?.value ?? currency;
    symbols.set(currency, s);
  }
  return s;
}

const dateFormats = new Map<string, Intl.DateTimeFormat>();

/** "2 March 2026 at 10:00 CET" in the merchant's time zone. */
export function formatDateTime(at: Date, timeZone: string): string {
  let f = dateFormats.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-GB', { timeZone, year: 'numeric', month: 'long', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
    } catch {
      f = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', year: 'numeric', month: 'long', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
    }
    dateFormats.set(timeZone, f);
  }
  return f.format(at);
}
