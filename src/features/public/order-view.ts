/**
 * What the pay page shows of an items link (views/pay/_items.eta) and of a customer-chosen amount
 * (views/pay/_custom_amount.eta). The numbers come from links' priceOrder on the server: the page
 * only shows them, and a checkout prices the order again from the link.
 */
import { formatMoney, toDecimalString } from '../../core/money.ts';
import { CUSTOM_AMOUNT_LINE, isAdjustable, planOf, priceOrder, quantityField, sections, subscriptionTerms, type CustomAmount, type LinkItem, type OrderChoice } from '../links/index.ts';
import { currencySymbol } from './view.ts';
import { recurringLabel } from '../products/index.ts';

/** The form fields an items checkout reads besides name, email and provider. */
export const ORDER_FIELDS = ['plan', 'step', 'shown_total'] as const;

/**
 * The posted quantities (`quantity_<product id>`) and plan of a pay form. A link with one
 * customer-chosen line also takes plain `quantity` (API.md "Public checkout").
 */
export function orderChoiceFrom(raw: Record<string, unknown>, items: readonly LinkItem[]): OrderChoice {
  const quantities: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(raw)) if (k.startsWith('quantity_') && typeof v === 'string') quantities[k] = v.slice(0, 12);
  const adjustable = items.filter((i) => isAdjustable(i.quantity));
  if (adjustable.length === 1 && typeof raw.quantity === 'string') quantities[quantityField(adjustable[0].product.id)] ??= raw.quantity.slice(0, 12);
  // A customer-chosen amount on the order: as chosenAmount reads it (a typed one wins), none is ''.
  const other = typeof raw.amount_other === 'string' ? raw.amount_other.trim() : '';
  const picked = typeof raw.amount === 'string' && raw.amount.trim() !== 'other' ? raw.amount.trim() : '';
  return { quantities, plan: typeof raw.plan === 'string' ? raw.plan : undefined, amount: (other || picked).slice(0, 20) };
}

/**
 * A stepper press (`step=<product id>:+1|-1`) applied to the posted quantities, clamped to the line's
 * bounds; `step=update` (or anything else) changes nothing: the page is shown again with its total.
 */
export function applyStep(items: readonly LinkItem[], choice: OrderChoice, step: string): OrderChoice {
  const m = /^(.+):([+-]1)$/.exec(step);
  const item = m ? items.find((i) => i.product.id === m[1]) : undefined;
  if (!m || !item || !isAdjustable(item.quantity)) return choice;
  const field = quantityField(item.product.id);
  const posted = Number(choice.quantities[field]);
  const current = Number.isSafeInteger(posted) ? posted : item.quantity.default;
  const next = Math.min(item.quantity.max, Math.max(item.quantity.min, current + Number(m[2])));
  return { ...choice, quantities: { ...choice.quantities, [field]: String(next) } };
}

export function itemsView(items: readonly LinkItem[], currency: string, choice: OrderChoice, errors: Record<string, string> = {}, custom: CustomAmount | null = null) {
  const priced = priceOrder(items, currency, choice);
  // With an amount the customer adds, the total includes it once it is a valid one.
  const whole = custom ? priceOrder(items, currency, choice, custom) : priced;
  const added = whole.ok && priced.ok ? whole.order.total - priced.order.total : 0;
  const quantities = priced.ok ? priced.order.quantities : priced.quantities;
  const { oneTime, recurring } = sections(items);
  const plan = planOf(items, choice.plan) ?? (oneTime.length ? '' : recurring[0]?.product.id ?? '');
  const line = (i: LinkItem) => {
    const id = i.product.id;
    const q = quantities[id];
    const field = quantityField(id);
    const r = i.product.recurring;
    return {
      id,
      field,
      name: i.product.name,
      description: i.product.description,
      unit: formatMoney(i.product.price, currency),
      every: r ? (r.count === 1 ? `/ ${r.interval}` : `every ${r.count} ${r.interval}s`) : null,
      trial: r?.trialDays ? `${r.trialDays}-day free trial` : null,
      quantity: choice.quantities[field] !== undefined && errors[field] ? choice.quantities[field] : String(q),
      adjustable: isAdjustable(i.quantity) ? { min: i.quantity.min, max: i.quantity.max, atMin: q <= i.quantity.min, atMax: q >= i.quantity.max } : null,
      total: formatMoney(q * i.product.price, currency),
      error: errors[field] ?? null,
    };
  };
  const total = whole.ok ? whole.order.total : priced.ok && custom ? priced.order.total : null;
  // A chosen plan: what renews, and — with a free trial — what is due today instead of the total.
  const terms = whole.ok ? subscriptionTerms(whole.order) : priced.ok ? subscriptionTerms(priced.order) : null;
  const renews = terms ? `${formatMoney(terms.renewalAmount, currency)} ${recurringLabel(terms)}` : null;
  return {
    oneTime: oneTime.map(line),
    recurring: recurring.map(line),
    plan,
    // With one-time lines, a plan is optional: "No plan" is a choice.
    planOptional: oneTime.length > 0,
    planError: errors.plan ?? null,
    error: errors.items ?? null,
    total: total === null ? null : formatMoney(total, currency),
    // What the page showed of the products (compared with the order at checkout: quantities changed since → say the new total first).
    totalMinor: priced.ok ? priced.order.total : null,
    // The customer's own amount on the order: in the total when chosen, else said to come on top.
    custom: custom ? { label: custom.label || CUSTOM_AMOUNT_LINE, added: added ? formatMoney(added, currency) : null, optional: custom.min === 0 } : null,
    /** Due at checkout when it differs from the total (a free trial leaves the plan out). */
    dueToday: terms && terms.dueNow !== total ? formatMoney(terms.dueNow, currency) : null,
    /** "Then €29.00 every month after the 14-day free trial, until canceled." */
    renewal: terms ? (terms.trialDays ? `Then ${renews} after the ${terms.trialDays}-day free trial, until canceled.` : `Renews at ${renews} until canceled.`) : null,
  };
}
export type ItemsView = ReturnType<typeof itemsView>;

/** A customer-chosen amount: its bounds, one-tap suggestions, and what was chosen or typed. */
export function customAmountView(c: CustomAmount, currency: string, ceiling: number, values: Record<string, string>) {
  const chosen = values.amount ?? '';
  return {
    currency,
    symbol: currencySymbol(currency),
    // On an items link the amount is added to the order: named by the link, and optional with a minimum of 0.
    legend: c.label || (c.label === undefined ? 'Amount' : CUSTOM_AMOUNT_LINE),
    optional: c.min === 0,
    min: formatMoney(c.min, currency),
    max: formatMoney(c.max ?? ceiling, currency),
    suggested: c.suggested.length ? c.suggested.map((minor) => ({ value: toDecimalString(minor, currency), label: formatMoney(minor, currency), checked: toDecimalString(minor, currency) === chosen })) : null,
    // With suggestions the typed amount is `amount_other`; without, it is `amount` itself.
    typed: !c.suggested.length ? chosen : values.amount_other || (chosen && chosen !== 'other' && !c.suggested.some((m) => toDecimalString(m, currency) === chosen) ? chosen : ''),
  };
}

/**
 * The amount a custom-amount form chose: a typed one (`amount_other`, which wins: typing is more
 * deliberate than a tap), else a suggested radio (`amount=12.50`). Integrators may post
 * `amount=12.50` alone (API.md). Returns the decimal string to parse, or the `amount` field's error.
 */
export function chosenAmount(raw: Record<string, unknown>): { ok: true; text: string } | { ok: false; message: string } {
  const a = typeof raw.amount === 'string' ? raw.amount.trim() : '';
  const other = typeof raw.amount_other === 'string' ? raw.amount_other.trim() : '';
  if (other) return { ok: true, text: other };
  if (a && a !== 'other') return { ok: true, text: a };
  return { ok: false, message: 'Choose or enter the amount you want to pay.' };
}
