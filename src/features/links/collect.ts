/**
 * What a link's checkout collects (issue 16, API.md "Checkout builder"): the customer's phone (off,
 * optional, required), a postal address, special instructions, consent to the merchant's terms, and
 * up to 10 custom fields (text, number, dropdown, checkbox) with a label and help text. Stored on the
 * link as JSON (`links.collect`); null when the link collects nothing beyond name and email.
 */
import { z } from 'zod';
import { ValidationError, type FieldError } from '../../core/errors.ts';

export const CUSTOM_FIELDS_MAX = 10;
export const OPTIONS_MAX = 50;
export const FIELD_TYPES = ['text', 'number', 'dropdown', 'checkbox'] as const;
export type CustomFieldType = (typeof FIELD_TYPES)[number];

export interface CustomField {
  key: string;
  label: string;
  type: CustomFieldType;
  required: boolean;
  /** Dropdowns only: the choices, in order. */
  options?: string[];
  /** Shown under the field. */
  help?: string | null;
}

export interface Collect {
  phone: 'off' | 'optional' | 'required';
  address: boolean;
  instructions: boolean;
  terms_url: string | null;
  custom_fields: CustomField[];
}

export const NO_COLLECT: Collect = Object.freeze({ phone: 'off', address: false, instructions: false, terms_url: null, custom_fields: [] }) as Collect;

const noControl = (s: string) => !/[\u0000-\u001f\u007f\u2028\u2029]/.test(s);
const line = (max: number, what: string) =>
  z
    .string({ error: `${what} must be text.` })
    .trim()
    .min(1, `Enter ${what}.`)
    .max(max, `${what[0].toUpperCase()}${what.slice(1)} can have at most ${max} characters.`)
    .refine(noControl, `${what[0].toUpperCase()}${what.slice(1)} cannot contain line breaks.`);

/** Keys are what the payment's `fields` are named by: they must stay stable and readable. */
const KEY = /^[a-z][a-z0-9_]{0,39}$/;

const customFieldSchema = z
  .object(
    {
      key: z.string({ error: 'key must be text.' }).refine((k) => KEY.test(k), 'A key is 1–40 lowercase letters, digits and underscores, starting with a letter (e.g. "company_name").'),
      label: line(80, 'a label'),
      type: z.enum(FIELD_TYPES, { error: 'type must be "text", "number", "dropdown" or "checkbox".' }),
      required: z.boolean({ error: 'required must be true or false.' }).default(false),
      options: z.array(line(100, 'an option'), { error: 'options must be a list of texts.' }).max(OPTIONS_MAX, `A dropdown can have at most ${OPTIONS_MAX} options.`).optional(),
      help: z.string({ error: 'help must be text.' }).trim().max(200, 'Help text can have at most 200 characters.').refine(noControl, 'Help text cannot contain line breaks.').nullish(),
    },
    { error: 'Each custom field is an object: { "key", "label", "type", "required", "options"? }.' },
  )
  .strict()
  .superRefine((f, ctx) => {
    if (f.type === 'dropdown') {
      if (!f.options || f.options.length < 1) ctx.addIssue({ code: 'custom', path: ['options'], message: 'A dropdown needs at least one option.' });
      else if (new Set(f.options.map((o) => o.toLowerCase())).size !== f.options.length) ctx.addIssue({ code: 'custom', path: ['options'], message: 'Each option must be different.' });
    } else if (f.options !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['options'], message: 'Only dropdowns have options.' });
    }
  });

const termsUrlSchema = z
  .string({ error: 'terms_url must be a URL or null.' })
  .trim()
  .max(2000, 'Keep the URL under 2000 characters.')
  .pipe(z.url({ protocol: /^https?$/, hostname: /^[^\s]+\.[^\s]+$|^localhost$/, error: 'Enter an absolute URL starting with https:// or http://.' }))
  .nullish();

export const collectSchema = z
  .object(
    {
      phone: z.enum(['off', 'optional', 'required'], { error: 'phone must be "off", "optional" or "required".' }).default('off'),
      address: z.boolean({ error: 'address must be true or false.' }).default(false),
      instructions: z.boolean({ error: 'instructions must be true or false.' }).default(false),
      terms_url: termsUrlSchema,
      custom_fields: z.array(customFieldSchema, { error: 'custom_fields must be a list.' }).max(CUSTOM_FIELDS_MAX, `A link can collect at most ${CUSTOM_FIELDS_MAX} custom fields.`).default([]),
    },
    { error: 'collect must be an object such as { "phone": "required", "address": true }.' },
  )
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.custom_fields.forEach((f, i) => {
      if (seen.has(f.key)) ctx.addIssue({ code: 'custom', path: ['custom_fields', i, 'key'], message: `Another custom field already has the key "${f.key}".` });
      seen.add(f.key);
    });
  });

/** `collect.custom_fields[2].options`: the API's way of naming a nested field. */
function pathOf(path: PropertyKey[]): string {
  return path.reduce<string>((out, p) => (typeof p === 'number' ? `${out}[${p}]` : `${out}.${String(p)}`), 'collect');
}

/** Validates a link's `collect` (null clears it); throws a ValidationError naming each bad nested field. */
export function parseCollect(raw: unknown): Collect | null {
  if (raw === null) return null;
  const r = collectSchema.safeParse(raw);
  if (!r.success) {
    const errors: FieldError[] = r.error.issues.map((i) => ({ field: pathOf(i.path), code: i.code === 'custom' ? 'invalid_collect' : i.code, message: i.message }));
    throw new ValidationError(errors);
  }
  const c = r.data;
  const out: Collect = {
    phone: c.phone,
    address: c.address,
    instructions: c.instructions,
    terms_url: c.terms_url ?? null,
    custom_fields: c.custom_fields.map((f) => ({ key: f.key, label: f.label, type: f.type, required: f.required, ...(f.type === 'dropdown' ? { options: f.options } : {}), help: f.help || null })),
  };
  return isEmpty(out) ? null : out;
}

const isEmpty = (c: Collect) => c.phone === 'off' && !c.address && !c.instructions && !c.terms_url && !c.custom_fields.length;

/** The stored JSON → Collect (null: nothing beyond name and email). */
export function collectFrom(raw: unknown): Collect | null {
  return typeof raw === 'string' && raw ? (JSON.parse(raw) as Collect) : null;
}

/** The API shape: always the full object (defaults when the link collects nothing more). */
export function collectJson(c: Collect | null): Collect {
  return c ?? { ...NO_COLLECT, custom_fields: [] };
}
