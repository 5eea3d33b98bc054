/**
 * The link form's items picker and customer-chosen amount ↔ the service's `items` and
 * `custom_amount`. The picker posts, per product id X: `item=X` (ticked), `qty_mode_X` (`fixed` |
 * `choose`), `qty_X` (a fixed quantity), `qty_min_X`, `qty_max_X`, `qty_default_X`. Ticked products
 * become lines in the order the form lists them (one-time first, then recurring).
 */
import { parseDecimalAmount, toDecimalString } from '../../core/money.ts';
import type { FieldError } from '../../core/errors.ts';
import { isAdjustable, type CustomAmount, type LinkItem } from './items.ts';

type Body = Record<string, unknown>;
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const list = (v: unknown): string[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');

export interface ItemFormValue {
  mode: 'fixed' | 'choose';
  qty: string;
  min: string;
  max: string;
  default: string;
}

export interface ItemsFormValues {
  /** Ticked product ids, in form order. */
  items: string[];
  /** What was typed per product id. */
  item: Record<string, ItemFormValue>;
}

export interface CustomAmountFormValues {
  amount_mode: 'fixed' | 'custom';
  amount_min: string;
  amount_max: string;
  /** Decimals separated by spaces or commas: "5 10 25". */
  amount_suggested: string;
  /** An items link's: what the customer's amount is for ("Donation"). */
  amount_label: string;
}

export const newItemValues = (): ItemsFormValues => ({ items: [], item: {} });
export const newCustomAmountValues = (): CustomAmountFormValues => ({ amount_mode: 'fixed', amount_min: '', amount_max: '', amount_suggested: '', amount_label: '' });

export function itemValues(items: readonly LinkItem[]): ItemsFormValues {
  const out = newItemValues();
  for (const i of items) {
    out.items.push(i.product.id);
    out.item[i.product.id] = isAdjustable(i.quantity)
      ? { mode: 'choose', qty: '1', min: String(i.quantity.min), max: String(i.quantity.max), default: String(i.quantity.default) }
      : { mode: 'fixed', qty: String(i.quantity), min: '', max: '', default: '' };
  }
  return out;
}

export function customAmountValues(c: CustomAmount | null, currency: string): CustomAmountFormValues {
  if (!c) return newCustomAmountValues();
  return { amount_mode: 'custom', amount_min: c.min ? toDecimalString(c.min, currency) : '', amount_max: c.max === null ? '' : toDecimalString(c.max, currency), amount_suggested: c.suggested.map((s) => toDecimalString(s, currency)).join(' '), amount_label: c.label ?? '' };
}

/** The picker as posted: every product's typed values (ticked or not), so a 422 shows them again. */
export function postedItemValues(body: Body): ItemsFormValues {
  const out: ItemsFormValues = { items: list(body.item), item: {} };
  for (const key of Object.keys(body)) {
    const m = /^qty_mode_(.+)$/.exec(key);
    if (!m) continue;
    const id = m[1];
    out.item[id] = { mode: body[key] === 'choose' ? 'choose' : 'fixed', qty: text(body[`qty_${id}`]), min: text(body[`qty_min_${id}`]), max: text(body[`qty_max_${id}`]), default: text(body[`qty_default_${id}`]) };
  }
  return out;
}

export function postedCustomAmountValues(body: Body): CustomAmountFormValues {
  return { amount_mode: body.amount_mode === 'custom' ? 'custom' : 'fixed', amount_min: text(body.amount_min), amount_max: text(body.amount_max), amount_suggested: text(body.amount_suggested), amount_label: text(body.amount_label) };
}

/** A whole number as typed, or the text itself so the service's message (by its field) explains the range. */
const whole = (s: string): number | string => (/^\s*\d{1,6}\s*$/.test(s) ? Number(s) : s.trim());

/** `items` for the service, from the ticked products and their quantities. */
export function itemsFrom(body: Body): unknown[] {
  const v = postedItemValues(body);
  return v.items.map((id) => {
    const f = v.item[id] ?? { mode: 'fixed', qty: '1', min: '', max: '', default: '' };
    if (f.mode === 'fixed') return { product_id: id, quantity: whole(f.qty || '1') };
    const q: Record<string, unknown> = { min: whole(f.min || '0'), max: whole(f.max) };
    if (f.default.trim()) q.default = whole(f.default);
    return { product_id: id, quantity: q };
  });
}

/** `custom_amount` for the service from the decimals typed (errors by the form's fields), or undefined for a fixed amount. */
export function customAmountFrom(body: Body, currency: string, errors: FieldError[]): Record<string, unknown> | undefined {
  const v = postedCustomAmountValues(body);
  if (v.amount_mode !== 'custom') return undefined;
  const minor = (s: string, field: string): number | null | undefined => {
    if (!s.trim()) return null;
    const parsed = parseDecimalAmount(s, currency, { ceiling: false });
    if (parsed.ok) return parsed.minor;
    errors.push({ field, code: parsed.code, message: parsed.message });
    return undefined;
  };
  const min = minor(v.amount_min, 'amount_min');
  const max = minor(v.amount_max, 'amount_max');
  const suggested = v.amount_suggested
    .split(/[\s,;]+/)
    .filter(Boolean)
    .map((s) => minor(s, 'amount_suggested'));
  if (min === undefined || max === undefined || suggested.includes(undefined)) return undefined;
  // An items link's form names the amount (its field is not on an amount link's form).
  return { min, max, suggested, ...(body.amount_label !== undefined ? { label: v.amount_label.trim() || null } : {}) };
}

/** The service's field names for items and custom amounts → the form's. `items[i]…` names the i-th ticked product. */
export function itemFormField(field: string, body: Body): string | null {
  if (field === 'custom_amount' || field.startsWith('custom_amount.min')) return 'amount_min';
  if (field.startsWith('custom_amount.max')) return 'amount_max';
  if (field.startsWith('custom_amount.label')) return 'amount_label';
  if (field.startsWith('custom_amount.')) return 'amount_suggested';
  const m = /^items\[(\d+)\]/.exec(field);
  if (m) return `item_${list(body.item)[Number(m[1])] ?? ''}`;
  if (field === 'items') return 'items';
  return null;
}
