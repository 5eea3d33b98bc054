/**
 * Items links and customer-chosen amounts (API.md "Checkout builder").
 *
 * An `items` link sells one or more of the merchant's products, each with a fixed quantity or a
 * quantity the customer picks between a min and a max. Recurring products sit in their own section;
 * when several are offered the customer picks one. A link may instead let the customer choose the
 * amount: `custom_amount: { min, max, suggested }`.
 *
 * Validation here answers by the API's field paths (`items[0].quantity.max`,
 * `custom_amount.suggested[1]`); the order a customer builds is priced here too, on the server only,
 * from the link's own products: whatever a form says of prices is never read, and a quantity outside
 * its line's bounds is refused by its field.
 */
import { amountCeilingError, formatMoney, maxAmount, parseDecimalAmount } from '../../core/money.ts';
import { ValidationError, type FieldError } from '../../core/errors.ts';
import { lineItemsTotal, type LineItem } from '../../core/line-items.ts';
import type { Queryable, Trx } from '../../core/db.ts';
import type { Product, RecurringInterval } from '../products/index.ts';

/** Most products one items link sells. */
export const ITEMS_MAX = 20;
/** Most of one product in one payment. */
export const QUANTITY_MAX = 999;
/** Most suggested amounts a custom-amount link shows. */
export const SUGGESTED_MAX = 6;

export type ItemQuantity = number | { min: number; max: number; default: number };

/** An items link's line as the merchant set it (input, before products are looked up). */
export interface LinkItemInput {
  productId: string;
  quantity: ItemQuantity;
}

/** The product a line sells, as the link reads it (current name and price; `active` false once deleted too). */
export type ItemProduct = Pick<Product, 'key' | 'id' | 'name' | 'description' | 'price' | 'currency' | 'active' | 'recurring'>;

/** A line of an items link, with its product. */
export interface LinkItem {
  product: ItemProduct;
  quantity: ItemQuantity;
}

export interface CustomAmount {
  /** Minor units; the least a customer may pay (at least 1; on an items link 0 makes it optional). */
  min: number;
  /** Minor units; null = the currency's ceiling. */
  max: number | null;
  /** Ascending amounts offered as one-tap choices. */
  suggested: number[];
  /** On an items link: what the amount is for, its line on the order ("Donation"); null → "Amount of your choice". */
  label?: string | null;
}

/** Longest label of an items link's customer-chosen amount. */
export const CUSTOM_AMOUNT_LABEL_MAX = 60;
/** The order line of an items link's customer-chosen amount, unless the link names it. */
export const CUSTOM_AMOUNT_LINE = 'Amount of your choice';

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** `items` as posted to the API → lines, or every problem by its field at once. */
export function parseItemsInput(raw: unknown): LinkItemInput[] {
  const errors: FieldError[] = [];
  if (!Array.isArray(raw)) throw new ValidationError([{ field: 'items', code: 'invalid_items', message: 'items must be a list of { product_id, quantity }.' }]);
  if (!raw.length) throw new ValidationError([{ field: 'items', code: 'too_few_items', message: 'An items link needs at least one product.' }]);
  if (raw.length > ITEMS_MAX) throw new ValidationError([{ field: 'items', code: 'too_many_items', message: `An items link can sell at most ${ITEMS_MAX} products.` }]);
  const out: LinkItemInput[] = [];
  const seen = new Set<string>();
  raw.forEach((item, i) => {
    const at = `items[${i}]`;
    if (!item || typeof item !== 'object' || Array.isArray(item)) {
      errors.push({ field: at, code: 'invalid_item', message: 'Each item is { product_id, quantity }.' });
      return;
    }
    const r = item as Record<string, unknown>;
    const unknownKey = Object.keys(r).find((k) => k !== 'product_id' && k !== 'quantity');
    if (unknownKey) errors.push({ field: `${at}.${unknownKey}`, code: 'unrecognized_key', message: `Unknown field "${unknownKey}": an item is { product_id, quantity }.` });
    const productId = typeof r.product_id === 'string' ? r.product_id.trim() : '';
    if (!productId || productId.length > 64) errors.push({ field: `${at}.product_id`, code: 'required', message: 'Choose a product (its id, prod_…).' });
    else if (seen.has(productId)) errors.push({ field: `${at}.product_id`, code: 'duplicate_product', message: 'This product is already in the list: give it one line with its quantity.' });
    seen.add(productId);
    const quantity = parseQuantity(r.quantity === undefined ? 1 : r.quantity, `${at}.quantity`, errors);
    if (quantity !== null && productId) out.push({ productId, quantity });
  });
  if (errors.length) throw new ValidationError(errors);
  return out;
}

function parseQuantity(q: unknown, at: string, errors: FieldError[]): ItemQuantity | null {
  if (typeof q === 'number') {
    if (!isInt(q) || q < 1 || q > QUANTITY_MAX) {
      errors.push({ field: at, code: 'invalid_quantity', message: `A fixed quantity is a whole number from 1 to ${QUANTITY_MAX}.` });
      return null;
    }
    return q;
  }
  if (!q || typeof q !== 'object' || Array.isArray(q)) {
    errors.push({ field: at, code: 'invalid_quantity', message: 'quantity is a whole number, or { min, max, default } to let the customer choose.' });
    return null;
  }
  const r = q as Record<string, unknown>;
  const before = errors.length;
  const unknownKey = Object.keys(r).find((k) => k !== 'min' && k !== 'max' && k !== 'default');
  if (unknownKey) errors.push({ field: `${at}.${unknownKey}`, code: 'unrecognized_key', message: `Unknown field "${unknownKey}": a chosen quantity is { min, max, default }.` });
  const min = r.min === undefined ? 0 : r.min;
  const max = r.max;
  if (!isInt(min) || min < 0 || min > QUANTITY_MAX) errors.push({ field: `${at}.min`, code: 'invalid_quantity', message: `min is a whole number from 0 to ${QUANTITY_MAX}.` });
  if (!isInt(max) || max < 1 || max > QUANTITY_MAX) errors.push({ field: `${at}.max`, code: 'invalid_quantity', message: `max is a whole number from 1 to ${QUANTITY_MAX}.` });
  else if (isInt(min) && max < min) errors.push({ field: `${at}.max`, code: 'max_below_min', message: 'max cannot be less than min.' });
  if (errors.length > before) return null;
  const lo = min as number;
  const hi = max as number;
  const def = r.default === undefined ? Math.min(Math.max(lo, 1), hi) : r.default;
  if (!isInt(def) || def < lo || def > hi) {
    errors.push({ field: `${at}.default`, code: 'invalid_quantity', message: `default must be a whole number between min (${lo}) and max (${hi}).` });
    return null;
  }
  return { min: lo, max: hi, default: def };
}

/**
 * The lines checked against the products they name (the merchant's, active, one currency): errors by
 * `items[i].product_id`. Returns the link's currency.
 */
export function checkItemProducts(items: LinkItemInput[], products: (ItemProduct | null)[]): string {
  const errors: FieldError[] = [];
  let currency: string | null = null;
  items.forEach((item, i) => {
    const p = products[i];
    const field = `items[${i}].product_id`;
    if (!p) return errors.push({ field, code: 'unknown_product', message: 'Choose one of your products.' });
    if (!p.active) return errors.push({ field, code: 'inactive_product', message: `“${p.name}” is inactive. Activate it or choose another product.` });
    if (currency === null) currency = p.currency;
    else if (p.currency !== currency) errors.push({ field, code: 'currency_mismatch', message: `All products of a link must be in one currency: “${p.name}” is in ${p.currency}, the first product in ${currency}.` });
  });
  if (!errors.length) {
    const total = lineItemsTotal(items.map((item, i) => ({ quantity: defaultQuantity(item.quantity), unitAmount: products[i]!.price })));
    const over = total === null || total > maxAmount(currency!) ? amountCeilingError(total ?? Number.MAX_SAFE_INTEGER, currency!, 'items') : null;
    if (over) errors.push({ ...over, message: `At the default quantities the total is over the largest amount one payment can take. ${over.message}` });
  }
  if (errors.length) throw new ValidationError(errors);
  return currency!;
}

export const defaultQuantity = (q: ItemQuantity): number => (typeof q === 'number' ? q : q.default);
export const isAdjustable = (q: ItemQuantity): q is { min: number; max: number; default: number } => typeof q !== 'number';

/**
 * `custom_amount` as posted → minor units, checked against the currency (errors by `custom_amount.*`).
 * On an items link (`forItems`) it is an amount the customer adds to the order: `min` may be 0 (the
 * customer may add nothing) and `label` names its line.
 */
export function parseCustomAmount(raw: unknown, currency: string, opts: { forItems?: boolean } = {}): CustomAmount {
  const at = 'custom_amount';
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ValidationError([{ field: at, code: 'invalid_custom_amount', message: 'custom_amount is { min, max, suggested: [...] } in minor units.' }]);
  const r = raw as Record<string, unknown>;
  const errors: FieldError[] = [];
  const keys = opts.forItems ? ['min', 'max', 'suggested', 'label'] : ['min', 'max', 'suggested'];
  const unknownKey = Object.keys(r).find((k) => !keys.includes(k));
  if (unknownKey) errors.push({ field: `${at}.${unknownKey}`, code: 'unrecognized_key', message: unknownKey === 'label' ? 'label names the amount on an items link; an amount link’s amount is the whole payment.' : `Unknown field "${unknownKey}": custom_amount is { ${keys.join(', ')} }.` });
  let label: string | null = null;
  if (opts.forItems && r.label !== undefined && r.label !== null) {
    if (typeof r.label !== 'string' || /[\r\n]/.test(r.label) || r.label.trim().length > CUSTOM_AMOUNT_LABEL_MAX) errors.push({ field: `${at}.label`, code: 'invalid_label', message: `label is one line of at most ${CUSTOM_AMOUNT_LABEL_MAX} characters, e.g. "Donation".` });
    else label = r.label.trim() || null;
  }
  const ceiling = maxAmount(currency);
  const amountAt = (v: unknown, field: string): number | null => {
    if (!isInt(v) || v < 1) {
      errors.push({ field, code: 'invalid_amount', message: 'Amounts are whole numbers of minor units greater than zero (1250 for 12.50).' });
      return null;
    }
    const over = amountCeilingError(v, currency, field);
    if (over) {
      errors.push(over);
      return null;
    }
    return v;
  };
  const optionalZero = opts.forItems && r.min === 0;
  const min = r.min === undefined || r.min === null ? (opts.forItems ? 0 : 1) : optionalZero ? 0 : amountAt(r.min, `${at}.min`);
  const max = r.max === undefined || r.max === null ? null : amountAt(r.max, `${at}.max`);
  if (min !== null && max !== null && max < min) errors.push({ field: `${at}.max`, code: 'max_below_min', message: 'max cannot be less than min.' });
  const suggested: number[] = [];
  if (r.suggested !== undefined && r.suggested !== null) {
    if (!Array.isArray(r.suggested)) errors.push({ field: `${at}.suggested`, code: 'invalid_suggested', message: 'suggested is a list of amounts in minor units.' });
    else if (r.suggested.length > SUGGESTED_MAX) errors.push({ field: `${at}.suggested`, code: 'too_many_suggested', message: `At most ${SUGGESTED_MAX} suggested amounts.` });
    else {
      r.suggested.forEach((s, i) => {
        const v = amountAt(s, `${at}.suggested[${i}]`);
        if (v === null) return;
        const lo = Math.max(1, min ?? 1);
        const hi = max ?? ceiling;
        if (v < lo || v > hi) errors.push({ field: `${at}.suggested[${i}]`, code: 'out_of_range', message: `A suggested amount must be between ${formatMoney(lo, currency)} and ${formatMoney(hi, currency)}.` });
        else if (suggested.includes(v)) errors.push({ field: `${at}.suggested[${i}]`, code: 'duplicate_amount', message: 'This amount is already suggested.' });
        else suggested.push(v);
      });
    }
  }
  if (errors.length) throw new ValidationError(errors);
  return { min: min!, max, suggested: suggested.sort((a, b) => a - b), ...(opts.forItems ? { label } : {}) };
}

export const customAmountToText = (c: CustomAmount | null): string | null => (c ? JSON.stringify(c) : null);
export function customAmountFromText(t: string | null | undefined): CustomAmount | null {
  if (!t) return null;
  const c = JSON.parse(t) as CustomAmount;
  return { min: Number(c.min ?? 1), max: c.max === null || c.max === undefined ? null : Number(c.max), suggested: (c.suggested ?? []).map(Number), ...(c.label !== undefined ? { label: c.label } : {}) };
}
export const customAmountJson = (c: CustomAmount | null) => (c ? { min: c.min, max: c.max, suggested: c.suggested, ...(c.label !== undefined ? { label: c.label } : {}) } : null);

/** The API shape of an items link's lines. */
export function itemsJson(items: readonly LinkItem[]) {
  return items.map((i) => ({
    product_id: i.product.id,
    quantity: i.quantity,
    name: i.product.name,
    unit_amount: i.product.price,
    recurring: i.product.recurring ? { interval: i.product.recurring.interval, interval_count: i.product.recurring.count, trial_days: i.product.recurring.trialDays } : null,
  }));
}

/**
 * What the customer ordered: the quantities a pay form posted, judged against the link's lines.
 * `quantity_<product id>` for a customer-chosen line (missing → its default); a fixed line's quantity
 * is the link's, whatever was posted. Among recurring lines the customer picks one (`plan`, a product
 * id; with one recurring line it is that one). Errors are by the form's field names.
 */
export interface OrderChoice {
  quantities: Record<string, string | undefined>;
  /** The chosen recurring product's id, as posted. */
  plan?: string;
  /** A link with a customer-chosen amount: the amount as typed or picked (a decimal), '' or absent for none. */
  amount?: string;
}

export interface PricedOrder {
  lines: LineItem[];
  total: number;
  /** The products' part of the total (without a customer-chosen amount): what the page's total said. */
  itemsTotal: number;
  /** The recurring product chosen (a subscription), if any. */
  recurring: ItemProduct | null;
  /** Quantity per product id as the page shows it again (a 422, a re-render). */
  quantities: Record<string, number>;
}

/**
 * The recurring product the customer takes: with one-time lines a plan is optional (none posted →
 * null); with only recurring lines one is needed (the only one, or the one posted). undefined: none
 * valid was chosen where one is needed, or an unknown one was posted.
 */
export function planOf(items: readonly LinkItem[], posted: string | undefined): string | null | undefined {
  const { oneTime, recurring } = sections(items);
  if (!recurring.length) return null;
  if (posted && recurring.some((r) => r.product.id === posted)) return posted;
  if (posted) return undefined;
  if (oneTime.length) return null;
  return recurring.length === 1 ? recurring[0].product.id : undefined;
}

/** One-time lines and recurring lines, each in the link's order. */
export function sections(items: readonly LinkItem[]): { oneTime: LinkItem[]; recurring: LinkItem[] } {
  return { oneTime: items.filter((i) => !i.product.recurring), recurring: items.filter((i) => i.product.recurring) };
}

export const quantityField = (productId: string) => `quantity_${productId}`;

export function priceOrder(items: readonly LinkItem[], currency: string, choice: OrderChoice, custom: CustomAmount | null = null): { ok: true; order: PricedOrder } | { ok: false; errors: Record<string, string>; quantities: Record<string, number> } {
  const errors: Record<string, string> = {};
  const quantities: Record<string, number> = {};
  const plan = planOf(items, choice.plan);
  if (plan === undefined) errors.plan = 'Choose one plan.';
  const { recurring } = sections(items);
  const lines: LineItem[] = [];
  for (const item of items) {
    const id = item.product.id;
    const q = item.quantity;
    let n: number;
    if (!isAdjustable(q)) n = q;
    else {
      const posted = choice.quantities[quantityField(id)];
      if (posted === undefined || posted.trim() === '') n = q.default;
      else if (!/^\d{1,6}$/.test(posted.trim())) {
        errors[quantityField(id)] = `Enter a whole number from ${q.min} to ${q.max}.`;
        n = q.default;
      } else {
        n = Number(posted.trim());
        if (n < q.min || n > q.max) errors[quantityField(id)] = n < q.min ? `At least ${q.min} of “${item.product.name}”.` : `At most ${q.max} of “${item.product.name}”.`;
      }
    }
    quantities[id] = n;
    // A recurring line the customer did not choose is not bought.
    if (item.product.recurring && id !== plan) continue;
    if (n > 0) lines.push({ productId: id, description: item.product.name, quantity: n, unitAmount: item.product.price });
  }
  const itemsTotal = lineItemsTotal(lines);
  if (custom) {
    const chosen = chosenPart(custom, currency, choice.amount);
    if (typeof chosen === 'string') errors.amount = chosen;
    else if (chosen > 0) lines.push({ productId: null, description: custom.label || CUSTOM_AMOUNT_LINE, quantity: 1, unitAmount: chosen });
  }
  if (Object.keys(errors).length) return { ok: false, errors, quantities };
  const total = lineItemsTotal(lines);
  if (!lines.length || total === 0) return { ok: false, errors: { items: custom ? 'Choose at least one item or an amount.' : 'Choose at least one item.' }, quantities };
  const over = total === null ? amountCeilingError(Number.MAX_SAFE_INTEGER, currency, 'items') : amountCeilingError(total, currency, 'items');
  if (over) return { ok: false, errors: { items: `That is more than one payment can take. ${over.message}` }, quantities };
  const chosen = !plan ? null : recurring.find((r) => r.product.id === plan)!.product;
  return { ok: true, order: { lines, total: total!, itemsTotal: itemsTotal ?? 0, recurring: chosen, quantities } };
}

/** An items link's customer-chosen amount as posted: minor units (0: none added), or the message for the `amount` field. */
function chosenPart(custom: CustomAmount, currency: string, posted: string | undefined): number | string {
  const text = (posted ?? '').trim();
  if (!text) return custom.min > 0 ? 'Choose or enter the amount you want to pay.' : 0;
  if (custom.min === 0 && /^0*(?:[.,]0*)?$/.test(text)) return 0;
  const parsed = parseDecimalAmount(text, currency, { ceiling: false });
  if (!parsed.ok) return parsed.message;
  if (parsed.minor < Math.max(1, custom.min)) return `The amount must be at least ${formatMoney(Math.max(1, custom.min), currency)}.`;
  const max = custom.max ?? maxAmount(currency);
  if (parsed.minor > max) return `The amount can be at most ${formatMoney(max, currency)}.`;
  return parsed.minor;
}

/** What subscribing through an order means: what each renewal charges, and what is due today. */
export interface SubscriptionTerms {
  plan: ItemProduct;
  interval: RecurringInterval;
  count: number;
  trialDays: number | null;
  /** Each renewal: the plan's line (its quantity times its price). */
  renewalAmount: number;
  /** Charged at checkout: the whole order, less the plan's line during a free trial. */
  dueNow: number;
  /** The order's lines as charged today (a trial's plan line at 0, saying so). */
  lines: LineItem[];
}

/** An order's subscription terms; null when it has no plan. */
export function subscriptionTerms(order: PricedOrder): SubscriptionTerms | null {
  const plan = order.recurring;
  if (!plan?.recurring) return null;
  const line = order.lines.find((l) => l.productId === plan.id);
  const renewalAmount = line ? line.quantity * line.unitAmount : plan.price;
  const trialDays = plan.recurring.trialDays;
  return {
    plan,
    interval: plan.recurring.interval,
    count: plan.recurring.count,
    trialDays,
    renewalAmount,
    dueNow: order.total - (trialDays ? renewalAmount : 0),
    lines: trialDays ? order.lines.map((l) => (l === line ? { ...l, description: `${l.description} (${trialDays}-day free trial)`, unitAmount: 0 } : l)) : order.lines,
  };
}

/** The lines at their default quantities (the plain page, before the customer changes anything). */
export const defaultChoice = (): OrderChoice => ({ quantities: {} });

/** A `link_items` row, as the link keeps it. */
export interface ItemRow {
  productKey: number;
  quantity: ItemQuantity;
}

export const itemRowFrom = (r: any): ItemRow => ({
  productKey: Number(r.product_id),
  quantity: r.quantity !== null && r.quantity !== undefined ? Number(r.quantity) : { min: Number(r.quantity_min), max: Number(r.quantity_max), default: Number(r.quantity_default) },
});

export const itemRowColumns = (linkKey: number, position: number, row: ItemRow) => ({
  link_id: linkKey,
  product_id: row.productKey,
  position,
  quantity: isAdjustable(row.quantity) ? null : row.quantity,
  quantity_min: isAdjustable(row.quantity) ? row.quantity.min : null,
  quantity_max: isAdjustable(row.quantity) ? row.quantity.max : null,
  quantity_default: isAdjustable(row.quantity) ? row.quantity.default : null,
});

/** What a link needs of a product (the products feature's Product). */
type ProductLike = ItemProduct & Pick<Product, 'deletedAt'>;

export const itemProductOf = (p: ProductLike): ItemProduct => ({ key: p.key, id: p.id, name: p.name, description: p.description, price: p.price, currency: p.currency, active: p.active && !p.deletedAt, recurring: p.recurring });

/** Rows with their products (a row whose product is gone entirely is left out). */
export function linkItemsFrom(rows: readonly ItemRow[], products: Map<number, ProductLike>): LinkItem[] {
  const out: LinkItem[] = [];
  for (const r of rows) {
    const p = products.get(r.productKey);
    if (p) out.push({ product: itemProductOf(p), quantity: r.quantity });
  }
  return out;
}

/** The lines of these items links, in order, by link key (one query per 500 links). */
export async function itemRowsOf(q: Queryable, keys: number[]): Promise<Map<number, ItemRow[]>> {
  const out = new Map<number, ItemRow[]>();
  const unique = [...new Set(keys)];
  for (let i = 0; i < unique.length; i += 500) {
    for (const r of await q('link_items').whereIn('link_id', unique.slice(i, i + 500)).orderBy('link_id').orderBy('position')) {
      const list = out.get(Number(r.link_id)) ?? [];
      list.push(itemRowFrom(r));
      out.set(Number(r.link_id), list);
    }
  }
  return out;
}

/** Replaces an items link's lines, in the caller's transaction. */
export async function replaceItemRows(trx: Trx, linkKey: number, rows: readonly ItemRow[]): Promise<void> {
  await trx('link_items').where({ link_id: linkKey }).del();
  if (rows.length) await trx('link_items').insert(rows.map((r, i) => itemRowColumns(linkKey, i, r)));
}
