/**
 * A link form as typed so far → what a pay page would show of it (the link form's live preview):
 * the checkout section's `collect` and a customer-chosen amount. Lenient where saving is strict:
 * a part that would not save yet (a custom field without a label, a maximum below the minimum)
 * previews as the valid rest, never as an error — the form itself says what is wrong on save.
 */
import { ValidationError } from '../../core/errors.ts';
import { parseCollect, type Collect } from './collect.ts';
import { collectInput } from './collect-form.ts';
import { customAmountFrom, itemsFrom } from './items-form.ts';
import { QUANTITY_MAX, parseCustomAmount, type CustomAmount, type LinkItemInput } from './items.ts';

type Body = Record<string, unknown>;

export interface CheckoutDraft {
  /** undefined: the form has no checkout section (keep the saved link's). */
  collect: Collect | null | undefined;
  /** undefined: the form has no price section; null: a fixed price. */
  customAmount: CustomAmount | null | undefined;
  /** undefined: the form has no product picker; else the ticked products (a quantity not yet valid shows as 1). */
  items: LinkItemInput[] | undefined;
}

const whole = (v: unknown, lo: number): number | null => (typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= QUANTITY_MAX ? v : null);

/** A line's quantity as typed, or the nearest that would save. */
function draftQuantity(q: unknown): LinkItemInput['quantity'] {
  if (typeof q !== 'object' || q === null) return whole(q, 1) ?? 1;
  const r = q as Record<string, unknown>;
  const min = whole(r.min, 0) ?? 0;
  const max = Math.max(min, whole(r.max, 1) ?? min);
  if (max < 1) return 1;
  const d = whole(r.default, 0);
  return { min, max, default: d === null ? Math.max(min, Math.min(1, max)) : Math.min(max, Math.max(min, d)) };
}

/** Validation as saving does it, null when it refuses (the preview shows less, never an error). */
function lenient<T>(parse: () => T): T | null {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ValidationError) return null;
    throw err;
  }
}

/** The ticked products of an items link's picker as typed (undefined: the form has no picker). */
export function itemsDraftFromForm(body: Body): LinkItemInput[] | undefined {
  if (!Object.keys(body).some((k) => k.startsWith('qty_mode_'))) return undefined;
  return itemsFrom(body).map((i) => ({ productId: String((i as { product_id: string }).product_id), quantity: draftQuantity((i as { quantity: unknown }).quantity) }));
}

/** `forItems`: the customer-chosen amount is one added to an items order (links/items.ts parseCustomAmount). */
export function checkoutDraftFromForm(body: Body, currency: string, opts: { forItems?: boolean } = {}): CheckoutDraft {
  const raw = collectInput(body) as (Omit<Collect, 'custom_fields'> & { custom_fields: Collect['custom_fields'] }) | undefined;
  let collect: Collect | null | undefined;
  if (raw !== undefined) {
    // Each custom field on its own: one still being typed does not hide the others.
    const fields = raw.custom_fields.filter((f) => lenient(() => parseCollect({ phone: 'off', address: false, instructions: false, terms_url: null, custom_fields: [f] })) !== null);
    collect = lenient(() => parseCollect({ ...raw, custom_fields: fields })) ?? lenient(() => parseCollect({ ...raw, terms_url: null, custom_fields: fields }));
  }
  let customAmount: CustomAmount | null | undefined;
  if (body.amount_mode !== undefined || body.amount_form !== undefined) {
    const typed = customAmountFrom(body, currency, []);
    const parse = (raw: Record<string, unknown>) => lenient(() => parseCustomAmount(raw, currency, opts));
    const label = typed && 'label' in typed ? { label: typed.label } : {};
    customAmount = typed === undefined ? (body.amount_mode === 'custom' ? parse({}) : null) : (parse(typed) ?? parse({ min: typed.min, ...label }) ?? parse(label) ?? parse({}));
  }
  return { collect, customAmount, items: itemsDraftFromForm(body) };
}
