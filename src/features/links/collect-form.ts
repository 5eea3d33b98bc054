/**
 * The link form's "Checkout" section ↔ a link's `collect`. Custom fields are rows of inputs
 * (`cf_label_0`, `cf_key_0`, `cf_type_0`, `cf_required_0`, `cf_options_0`, `cf_help_0`, …): the
 * link's fields and two empty rows (up to 10); a row left blank is no field. The rows are compacted
 * before validation, and shown again compacted, so an error such as `collect.custom_fields[1].label`
 * sits by the row that caused it. The section posts `collect_form=1`: a form without it leaves the
 * link's collect as it is.
 */
import type { Collect, CustomFieldType } from './collect.ts';
import { CUSTOM_FIELDS_MAX, FIELD_TYPES } from './collect.ts';

export interface CustomFieldRow {
  label: string;
  key: string;
  type: CustomFieldType;
  required: boolean;
  /** One option per line. */
  options: string;
  help: string;
}

export interface CollectFormValues {
  phone: 'off' | 'optional' | 'required';
  address: boolean;
  instructions: boolean;
  terms_url: string;
  fields: CustomFieldRow[];
}

type Body = Record<string, unknown>;
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const checked = (v: unknown): boolean => v === 'on' || v === '1' || v === 'true';
const EMPTY_ROW: CustomFieldRow = { label: '', key: '', type: 'text', required: false, options: '', help: '' };

/** A row with nothing typed in it: no field. */
const isBlank = (r: CustomFieldRow) => !(r.label.trim() || r.key.trim() || r.options.trim() || r.help.trim());

/** The first row left empty (-1: none, i.e. ten fields): where "Add more fields" puts the focus. */
export const firstEmptyRow = (v: CollectFormValues): number => v.fields.findIndex(isBlank);

/** The rows to show: the given ones and up to two empty ones (10 at most). */
const padded = (rows: CustomFieldRow[]) => [...rows, ...Array.from({ length: Math.max(0, Math.min(2, CUSTOM_FIELDS_MAX - rows.length)) }, () => ({ ...EMPTY_ROW }))];

export function collectFormValues(c: Collect | null): CollectFormValues {
  return {
    phone: c?.phone ?? 'off',
    address: c?.address ?? false,
    instructions: c?.instructions ?? false,
    terms_url: c?.terms_url ?? '',
    fields: padded((c?.custom_fields ?? []).map((f) => ({ label: f.label, key: f.key, type: f.type, required: f.required, options: (f.options ?? []).join('\n'), help: f.help ?? '' }))),
  };
}

/** The posted section, rows compacted (blank rows dropped). */
function postedRows(body: Body): CustomFieldRow[] {
  const rows: CustomFieldRow[] = [];
  for (let i = 0; i < CUSTOM_FIELDS_MAX + 2; i++) {
    const row: CustomFieldRow = {
      label: text(body[`cf_label_${i}`]),
      key: text(body[`cf_key_${i}`]),
      type: (FIELD_TYPES as readonly string[]).includes(text(body[`cf_type_${i}`])) ? (text(body[`cf_type_${i}`]) as CustomFieldType) : 'text',
      required: checked(body[`cf_required_${i}`]),
      options: text(body[`cf_options_${i}`]),
      help: text(body[`cf_help_${i}`]),
    };
    if (!isBlank(row)) rows.push(row);
  }
  return rows;
}

export function postedCollectForm(body: Body): CollectFormValues {
  const phone = text(body.collect_phone);
  return {
    phone: phone === 'optional' || phone === 'required' ? phone : 'off',
    address: checked(body.collect_address),
    instructions: checked(body.collect_instructions),
    terms_url: text(body.collect_terms_url),
    fields: padded(postedRows(body)),
  };
}

/** "Company name" → "company_name": a key for a row that names none. */
function keyFrom(label: string, taken: Set<string>): string {
  const base = (label.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '_').replace(/^[^a-z]+|_+$/g, '') || 'field').slice(0, 36);
  let key = base;
  for (let n = 2; taken.has(key); n++) key = `${base}_${n}`;
  return key;
}

/** The service's `collect` input from the posted section (undefined when the form has no such section). */
export function collectInput(body: Body): unknown {
  if (body.collect_form === undefined) return undefined;
  const v = postedCollectForm(body);
  const rows = postedRows(body);
  const taken = new Set(rows.map((r) => r.key.trim()).filter(Boolean));
  return {
    phone: v.phone,
    address: v.address,
    instructions: v.instructions,
    terms_url: v.terms_url.trim() || null,
    custom_fields: rows.map((r) => {
      const key = r.key.trim() || keyFrom(r.label, taken);
      taken.add(key);
      return {
        key,
        label: r.label,
        type: r.type,
        required: r.required,
        ...(r.type === 'dropdown' || r.options.trim() ? { options: r.options.split(/\r?\n/).map((o) => o.trim()).filter(Boolean) } : {}),
        help: r.help.trim() || null,
      };
    }),
  };
}
