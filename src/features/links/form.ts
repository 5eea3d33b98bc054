/**
 * The dashboard's link form ↔ the link service's input. The form speaks decimals ("12.50"), radio
 * buttons and checkboxes; the service speaks minor units, nulls and booleans. Every problem comes back
 * as a field error, all at once, before anything is written.
 */
import { currencyDigits, parseDecimalAmount, toDecimalString } from '../../core/money.ts';
import { AppError, ValidationError, fieldErrorsFromZod, type FieldError } from '../../core/errors.ts';
import { currencySchema } from '../merchants/index.ts';
import type { Link } from './service.ts';
import { LIMIT_MAX, linkCreateSchema, linkUpdateSchema } from './schemas.ts';
import { tagNamesFrom } from '../../web/view.ts';
import {
  customAmountFrom,
  customAmountValues,
  itemFormField,
  itemValues,
  itemsFrom,
  newCustomAmountValues,
  newItemValues,
  postedCustomAmountValues,
  postedItemValues,
  type CustomAmountFormValues,
  type ItemsFormValues,
} from './items-form.ts';
import { parseCollect } from './collect.ts';
import { collectFormValues, collectInput, postedCollectForm, type CollectFormValues } from './collect-form.ts';
import { BRANDING_FORM_FIELDS, linkBrandingFromForm } from '../branding/index.ts';

export type LimitMode = 'unlimited' | 'once' | 'multiple';

/** What the form shows: strings as typed, so a 422 gives the merchant back exactly what they wrote. */
export type LinkType = 'amount' | 'product' | 'items';

export interface LinkFormValues extends ItemsFormValues, CustomAmountFormValues {
  type: LinkType;
  name: string;
  path: string;
  amount: string;
  currency: string;
  product_id: string;
  description: string;
  internal_notes: string;
  limit: LimitMode;
  limit_count: string;
  redirect_url: string;
  redirect_target: 'same' | 'new';
  show_remaining: boolean;
  allow_coupons: boolean;
  /** The "Checkout" section: what the checkout collects (collect-form.ts). */
  collect: CollectFormValues;
  active: boolean;
  tags: string[];
  new_tags: string;
}

type Body = Record<string, unknown>;

/** One text value of a form field; a repeated field keeps its array so the schema refuses it. */
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const list = (v: unknown): string[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');
const checked = (v: unknown): boolean => v === 'on' || v === '1' || v === 'true';

export function newLinkValues(type: LinkType, currency: string): LinkFormValues {
  return {
    ...newItemValues(),
    ...newCustomAmountValues(),
    type,
    name: '',
    path: '',
    amount: '',
    currency,
    product_id: '',
    description: '',
    internal_notes: '',
    limit: 'unlimited',
    limit_count: '',
    redirect_url: '',
    redirect_target: 'same',
    show_remaining: false,
    allow_coupons: false,
    collect: collectFormValues(null),
    active: true,
    tags: [],
    new_tags: '',
  };
}

export function linkValues(link: Link): LinkFormValues {
  const limit: LimitMode = link.paymentLimit === null ? 'unlimited' : link.paymentLimit === 1 ? 'once' : 'multiple';
  return {
    ...itemValues(link.items),
    ...customAmountValues(link.customAmount, link.currency),
    type: link.type,
    name: link.name,
    path: link.path ?? '',
    amount: link.amount === null ? '' : toDecimalString(link.amount, link.currency),
    currency: link.currency,
    product_id: link.productId ?? '',
    description: link.description ?? '',
    internal_notes: link.internalNotes ?? '',
    limit,
    limit_count: limit === 'multiple' ? String(link.paymentLimit) : '',
    redirect_url: link.redirectUrl ?? '',
    redirect_target: link.redirectTarget,
    show_remaining: link.showRemaining,
    allow_coupons: link.allowCoupons,
    collect: collectFormValues(link.collect),
    active: link.active,
    tags: link.tags.map((t) => t.name),
    new_tags: '',
  };
}

/** The posted form as values to show again (after a 422). */
export function postedValues(body: Body, type: LinkType, fallbackCurrency: string): LinkFormValues {
  const limit = text(body.limit);
  return {
    ...postedItemValues(body),
    ...postedCustomAmountValues(body),
    type,
    name: text(body.name),
    path: text(body.path),
    amount: text(body.amount),
    currency: text(body.currency).trim().toUpperCase() || fallbackCurrency,
    product_id: text(body.product_id),
    description: text(body.description),
    internal_notes: text(body.internal_notes),
    limit: limit === 'once' || limit === 'multiple' ? limit : 'unlimited',
    limit_count: text(body.limit_count),
    redirect_url: text(body.redirect_url),
    redirect_target: body.redirect_target === 'new' ? 'new' : 'same',
    show_remaining: checked(body.show_remaining),
    allow_coupons: checked(body.allow_coupons),
    collect: postedCollectForm(body),
    active: checked(body.active),
    tags: list(body.tags),
    new_tags: text(body.new_tags),
  };
}

/** The Checkout section's `collect`, judged here too so its problems come back with the others. */
function collectFrom(body: Body, input: Record<string, unknown>, errors: FieldError[]): void {
  const collect = collectInput(body);
  if (collect === undefined) return;
  input.collect = collect;
  try {
    parseCollect(collect);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    errors.push(...err.errors);
  }
}

function limitFrom(body: Body, errors: FieldError[]): number | null | undefined {
  const mode = body.limit === undefined ? 'unlimited' : body.limit;
  if (mode === 'unlimited') return null;
  if (mode === 'once') return 1;
  if (mode === 'multiple') {
    const raw = text(body.limit_count).trim();
    const n = /^\d{1,7}$/.test(raw) ? Number(raw) : NaN;
    if (n >= 1 && n <= LIMIT_MAX) return n;
    errors.push({ field: 'payment_limit', code: 'invalid_limit', message: `Enter how many payments this link accepts: a whole number from 1 to ${LIMIT_MAX}.` });
    return undefined;
  }
  errors.push({ field: 'payment_limit', code: 'invalid_limit', message: 'Choose Unlimited, One-time or Multiple.' });
  return undefined;
}

/** Amount and currency typed as a decimal in the currency's precision → minor units. */
function amountFrom(body: Body, fallbackCurrency: string, errors: FieldError[]): { amount?: number; currency?: string } {
  const currency = currencySchema.safeParse(body.currency === undefined || body.currency === '' ? fallbackCurrency : body.currency);
  if (!currency.success) {
    errors.push({ field: 'currency', code: 'invalid_currency', message: currency.error.issues[0].message });
    return {};
  }
  const raw = text(body.amount);
  if (!raw.trim()) {
    errors.push({ field: 'amount', code: 'required', message: 'Enter the amount customers pay, such as 12.50.' });
    return { currency: currency.data };
  }
  // The ceiling is the service's to judge: only a new amount is held to it (an old one may be above a lowered ceiling).
  const parsed = parseDecimalAmount(raw, currency.data, { ceiling: false });
  if (!parsed.ok) {
    const example = currencyDigits(currency.data) === 0 ? '1250' : currencyDigits(currency.data) === 3 ? '12.500' : '12.50';
    errors.push({ field: 'amount', code: parsed.code, message: parsed.code === 'invalid_amount' ? `Enter an amount such as ${example}.` : parsed.message });
    return { currency: currency.data };
  }
  return { amount: parsed.minor, currency: currency.data };
}

/** A fixed amount, or (`amount_mode=custom`) the customer chooses one: `custom_amount`. */
function amountOrCustom(body: Body, fallbackCurrency: string, errors: FieldError[]): Record<string, unknown> {
  if (body.amount_mode !== 'custom') return amountFrom(body, fallbackCurrency, errors);
  const currency = currencySchema.safeParse(body.currency === undefined || body.currency === '' ? fallbackCurrency : body.currency);
  if (!currency.success) {
    errors.push({ field: 'currency', code: 'invalid_currency', message: currency.error.issues[0].message });
    return {};
  }
  const custom = customAmountFrom(body, currency.data, errors);
  return custom ? { custom_amount: custom, currency: currency.data } : { currency: currency.data };
}

/**
 * Fails with every field error at once: the form's own (amount, limit) and the schema's for the rest,
 * found by validating with a stand-in for the fields that already failed.
 */
function failIfAny(errors: FieldError[], schema: typeof linkCreateSchema | typeof linkUpdateSchema, input: Record<string, unknown>): void {
  if (!errors.length) return;
  const stand = { ...input };
  for (const e of errors) {
    if (e.field === 'amount') stand.amount = 1;
    if (e.field === 'currency') Object.assign(stand, { currency: undefined, amount: 1 });
    if (e.field === 'payment_limit') stand.payment_limit = null;
  }
  const rest = schema.safeParse(stand);
  const more = rest.success ? [] : rest.error.issues.map((i) => ({ field: i.path.map(String).join('.') || '_', code: i.code, message: i.message }));
  throw new ValidationError([...errors, ...more.filter((m) => !errors.some((e) => e.field === m.field))]);
}

/** The create input for the link service, from the posted new-link form. */
/** `merchantCurrency`: the currency typed amounts are in (for an items link, its products'). */
export function createInput(body: Body, merchantCurrency: string): Record<string, unknown> {
  const errors: FieldError[] = [];
  const type = body.type;
  const input: Record<string, unknown> = {
    type,
    name: body.name,
    description: body.description,
    internal_notes: body.internal_notes,
    tags: tagNamesFrom(body),
    redirect_url: body.redirect_url ?? '',
    redirect_target: body.redirect_target ?? 'same',
    show_remaining: checked(body.show_remaining),
    allow_coupons: checked(body.allow_coupons),
    active: checked(body.active),
    branding: linkBrandingFromForm(body),
  };
  if (typeof body.path === 'string' ? body.path.trim() : body.path !== undefined) input.path = body.path;
  input.payment_limit = limitFrom(body, errors);
  collectFrom(body, input, errors);
  if (type === 'amount') Object.assign(input, amountOrCustom(body, merchantCurrency, errors));
  else if (type === 'product') input.product_id = body.product_id;
  else if (type === 'items') {
    input.items = itemsFrom(body);
    // An amount the customer adds, in the products' currency (the caller passes it for an items link).
    const custom = body.amount_mode === 'custom' ? customAmountFrom(body, merchantCurrency, errors) : undefined;
    if (custom) input.custom_amount = custom;
  }
  failIfAny(errors, linkCreateSchema, input);
  return input;
}

/**
 * The update input from the posted edit form. The type and product never change; a product link has
 * no amount of its own. `active` is sent only when the merchant changed the checkbox, so a link closed
 * by its limit reopens when the limit is raised.
 */
export function updateInput(body: Body, link: Link): Record<string, unknown> {
  const errors: FieldError[] = [];
  if (body.type !== undefined && body.type !== link.type) {
    throw new AppError('immutable_field', 422, 'The link type cannot change. Create a new link instead.', {
      errors: [{ field: 'type', code: 'immutable_field', message: 'The link type cannot change after creation. Create a new link instead.' }],
    });
  }
  if (link.type === 'product') {
    if (text(body.amount).trim() || body.currency !== undefined) errors.push({ field: 'amount', code: 'not_an_amount_link', message: 'A product link takes its price from the product.' });
    if (body.product_id !== undefined && body.product_id !== link.productId) errors.push({ field: 'product_id', code: 'immutable_field', message: 'The product of a link cannot change. Create a new link instead.' });
  }
  const input: Record<string, unknown> = {
    name: body.name,
    path: body.path ?? '',
    description: body.description ?? '',
    internal_notes: body.internal_notes ?? '',
    tags: tagNamesFrom(body),
    redirect_url: body.redirect_url ?? '',
    redirect_target: body.redirect_target ?? 'same',
    show_remaining: checked(body.show_remaining),
    allow_coupons: checked(body.allow_coupons),
    branding: linkBrandingFromForm(body),
  };
  const active = checked(body.active);
  if (active !== link.active) input.active = active;
  input.payment_limit = limitFrom(body, errors);
  collectFrom(body, input, errors);
  if (link.type === 'amount') {
    const v = amountOrCustom(body, link.currency, errors);
    // Back to a fixed amount: the customer-chosen one goes.
    Object.assign(input, v, v.custom_amount === undefined && link.customAmount ? { custom_amount: null } : {});
  }
  if (link.type === 'items') {
    input.items = itemsFrom(body);
    const custom = body.amount_mode === 'custom' ? customAmountFrom(body, link.currency, errors) : undefined;
    if (custom) input.custom_amount = custom;
    else if (body.amount_form !== undefined && body.amount_mode !== 'custom' && link.customAmount) input.custom_amount = null;
  }
  failIfAny(errors, linkUpdateSchema, input);
  return input;
}

// ---- Sending at creation ----------------------------------------------------------------------

/** The "Send to a customer" part of the new-link form. */
export interface SendFormValues {
  customer_id: string;
  /** What the merchant typed into the customer search (shown when they have many customers). */
  customer_q: string;
  channels: string[];
  reminders: boolean;
  reminder_frequency: string;
  reminder_max: string;
}

export function newSendValues(): SendFormValues {
  return { customer_id: '', customer_q: '', channels: [], reminders: false, reminder_frequency: 'every_3_days', reminder_max: '3' };
}

/** The posted (or, for the htmx refresh, queried) send fields as values to show again. */
export function postedSendValues(body: Body): SendFormValues {
  const d = newSendValues();
  return {
    customer_id: text(body.customer_id).trim(),
    customer_q: text(body.customer_q),
    channels: list(body.channels),
    reminders: checked(body.reminders),
    reminder_frequency: text(body.reminder_frequency) || d.reminder_frequency,
    reminder_max: body.reminder_max === undefined ? d.reminder_max : text(body.reminder_max),
  };
}

/**
 * `send` for sending.createLink, from the form. No customer means no send; the form's own mistakes
 * (reminders without a customer) come back as field errors.
 */
export function sendInput(v: SendFormValues, linkActive = true): { send?: Record<string, unknown>; errors: FieldError[] } {
  const errors: FieldError[] = [];
  if (!v.customer_id) {
    if (v.reminders) errors.push({ field: 'reminders', code: 'needs_customer', message: 'Choose a customer to send reminders to.' });
    return { errors };
  }
  // An inactive link answers "not found": sending it would only puzzle the customer.
  if (!linkActive) errors.push({ field: 'send', code: 'link_inactive', message: 'An inactive link cannot be paid: tick “Active” to send it.' });
  const send: Record<string, unknown> = { customer_id: v.customer_id, channels: v.channels };
  if (v.reminders) {
    const max = v.reminder_max.trim();
    // A non-number goes to the service as typed so its message (by send.reminders.max) explains the range.
    send.reminders = { frequency: v.reminder_frequency, max: /^\d{1,4}$/.test(max) ? Number(max) : max };
  }
  return { send, errors };
}

/** The sending service's field names → the form's (messages for one field joined). */
const SEND_FIELDS: Record<string, string> = {
  send: 'customer_id',
  'send.customer_id': 'customer_id',
  'send.customer_ids': 'customer_id',
  'send.customer_tag': 'customer_id',
  'send.channels': 'channels',
  'send.reminders': 'reminders',
  'send.reminders.frequency': 'reminder_frequency',
  'send.reminders.max': 'reminder_max',
};

/**
 * Field errors by form field: the send's under the form's names (after-payment actions already use
 * the form's `action.<id>…` names), several messages for one field joined.
 */
export function formFieldErrors(errors: FieldError[], body: Body = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of errors) {
    const field = SEND_FIELDS[e.field] ?? BRANDING_FORM_FIELDS[e.field] ?? (e.field.startsWith('send.') ? 'customer_id' : itemFormField(e.field, body) ?? e.field);
    if (!out[field]) out[field] = e.message;
    else if (!out[field].includes(e.message)) out[field] += ` ${e.message}`;
  }
  return out;
}

/**
 * Every field error of the new-link form's link part at once: the form's own and the schema's (the
 * service would only report the schema's after the send passed).
 */
export function createInputErrors(body: Body, merchantCurrency: string): { input: Record<string, unknown> | null; errors: FieldError[] } {
  try {
    const input = createInput(body, merchantCurrency);
    const parsed = linkCreateSchema.safeParse(input);
    if (parsed.success) return { input, errors: [] };
    return { input: null, errors: fieldErrorsFromZod(parsed.error.issues) };
  } catch (err) {
    if (err instanceof ValidationError) return { input: null, errors: err.errors };
    throw err;
  }
}
