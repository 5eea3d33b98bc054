/**
 * What a pay page collects beyond name and email, per its link's `collect`: phone (E.164, validated
 * like a customer's), a postal address, special instructions, consent to the merchant's terms, and
 * custom fields (`fields[<key>]` in the form). Judged on the server only; the values a payment
 * carries are `fields: { key: value }` (text and dropdown: a string, number: a number, checkbox:
 * true/false; an optional field left empty: null).
 */
import type { Collect } from '../links/index.ts';
import { normalizePhone } from '../customers/index.ts';
import type { CollectedInput } from '../checkout/index.ts';

/** What was collected (checkout keeps it on the session). */
export type Collected = CollectedInput;

export const NOTHING_COLLECTED: Collected = Object.freeze({ phone: null, address: null, instructions: null, termsAccepted: false, fields: null }) as Collected;

/** The form name of a custom field. */
export const customName = (key: string) => `fields[${key}]`;

const str = (raw: Record<string, unknown>, name: string, max: number): string => (typeof raw[name] === 'string' ? (raw[name] as string).slice(0, max) : '');
const checked = (v: unknown) => v === 'on' || v === 'true' || v === '1';
const oneLine = (s: string) => !/[\u0000-\u001f\u007f\u2028\u2029]/.test(s);
/** Multi-line text: line breaks allowed, other control characters not. */
const multiLine = (s: string) => !/[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f\u2028\u2029]/.test(s);
const NUMBER = /^-?\d{1,15}(\.\d{1,6})?$/;

export const ADDRESS_MAX = 500;
export const INSTRUCTIONS_MAX = 1000;
export const TEXT_MAX = 500;

/** What the customer typed for these fields, to show again after a 422 or an Apply (bounded). */
export function postedCollectValues(raw: Record<string, unknown>, collect: Collect | null): Record<string, string> {
  if (!collect) return {};
  const out: Record<string, string> = {};
  if (collect.phone !== 'off') out.phone = str(raw, 'phone', 40);
  if (collect.address) out.address = str(raw, 'address', ADDRESS_MAX + 50);
  if (collect.instructions) out.instructions = str(raw, 'instructions', INSTRUCTIONS_MAX + 50);
  if (collect.terms_url) out.terms = checked(raw.terms) ? 'on' : '';
  for (const f of collect.custom_fields) out[customName(f.key)] = f.type === 'checkbox' ? (checked(raw[customName(f.key)]) ? 'on' : '') : str(raw, customName(f.key), TEXT_MAX + 50);
  return out;
}

/** Validates the collected fields of a posted pay form: the values, or a message per form field name. */
export function parseCollected(raw: Record<string, unknown>, collect: Collect | null): { ok: true; value: Collected } | { ok: false; errors: Record<string, string> } {
  if (!collect) return { ok: true, value: NOTHING_COLLECTED };
  const errors: Record<string, string> = {};
  let phone: string | null = null;
  if (collect.phone !== 'off') {
    const typed = str(raw, 'phone', 60).trim();
    if (!typed) {
      if (collect.phone === 'required') errors.phone = 'Enter your phone number.';
    } else {
      const p = normalizePhone(typed.slice(0, 40));
      if (!p.ok || typed.length > 40) errors.phone = p.ok ? 'That phone number is too long.' : 'Enter a valid phone number with its country code, such as +31 6 12345678.';
      else phone = p.e164;
    }
  }
  let address: string | null = null;
  if (collect.address) {
    const typed = str(raw, 'address', ADDRESS_MAX + 1).trim();
    if (!typed) errors.address = 'Enter your address.';
    else if (typed.length > ADDRESS_MAX) errors.address = `Keep the address under ${ADDRESS_MAX} characters.`;
    else if (!multiLine(typed)) errors.address = 'The address cannot contain control characters.';
    else address = typed;
  }
  let instructions: string | null = null;
  if (collect.instructions) {
    const typed = str(raw, 'instructions', INSTRUCTIONS_MAX + 1).trim();
    if (typed.length > INSTRUCTIONS_MAX) errors.instructions = `Keep the instructions under ${INSTRUCTIONS_MAX} characters.`;
    else if (!multiLine(typed)) errors.instructions = 'The instructions cannot contain control characters.';
    else instructions = typed || null;
  }
  const termsAccepted = Boolean(collect.terms_url) && checked(raw.terms);
  if (collect.terms_url && !termsAccepted) errors.terms = 'Tick the box to accept the terms before paying.';
  const fields: Record<string, string | number | boolean | null> = {};
  for (const f of collect.custom_fields) {
    const name = customName(f.key);
    if (f.type === 'checkbox') {
      const on = checked(raw[name]);
      if (f.required && !on) errors[name] = `Tick “${f.label}” to continue.`;
      fields[f.key] = on;
      continue;
    }
    const typed = str(raw, name, TEXT_MAX + 1).trim();
    if (!typed) {
      if (f.required) errors[name] = f.type === 'dropdown' ? `Choose ${f.label}.` : `Enter ${f.label}.`;
      fields[f.key] = null;
      continue;
    }
    if (f.type === 'text') {
      if (typed.length > TEXT_MAX) errors[name] = `Keep it under ${TEXT_MAX} characters.`;
      else if (!oneLine(typed)) errors[name] = 'Line breaks and control characters are not allowed here.';
      else fields[f.key] = typed;
    } else if (f.type === 'number') {
      if (!NUMBER.test(typed)) errors[name] = 'Enter a number, such as 42 or 3.5.';
      else fields[f.key] = Number(typed);
    } else if (!f.options?.includes(typed)) {
      errors[name] = 'Choose one of the options shown.';
    } else fields[f.key] = typed;
  }
  if (Object.keys(errors).length) return { ok: false, errors };
  return { ok: true, value: { phone, address, instructions, termsAccepted, fields: collect.custom_fields.length ? fields : null } };
}

/** What a checkout collected, as the form's values again ("Cancel and go back" from the provider's page). */
export function collectedValues(c: Collected): Record<string, string> {
  const out: Record<string, string> = {};
  if (c.phone) out.phone = c.phone;
  if (c.address) out.address = c.address;
  if (c.instructions) out.instructions = c.instructions;
  if (c.termsAccepted) out.terms = 'on';
  for (const [key, value] of Object.entries(c.fields ?? {})) out[customName(key)] = value === true ? 'on' : value === false || value === null ? '' : String(value);
  return out;
}
