import { z } from 'zod';
import { getCountries, getCountryCallingCode, isSupportedCountry, parsePhoneNumber, parsePhoneNumberWithError, type CountryCode } from 'libphonenumber-js/max';
import { tagNameSchema } from '../tags/index.ts';

const noControlChars = (s: string) => !/[\u0000-\u001f\u007f\u2028\u2029]/.test(s);

const optionalText = (max: number, label: string) =>
  z
    .string({ error: `${label} must be text.` })
    .max(max, `${label} can have at most ${max} characters.`)
    .transform((s) => (s.trim() ? s.trim() : null))
    .nullish();

const nameSchema = z
  .string({ error: 'Enter the customer’s name.' })
  .trim()
  .min(1, 'Enter the customer’s name.')
  .max(120, 'Keep the name under 120 characters.')
  .refine(noControlChars, 'A name cannot contain line breaks or control characters.');

/**
 * The form of an email that decides whether two customers are the same person: trimmed and
 * lowercased (what `email_normalized`, unique per merchant, holds). One rule for the form, the API,
 * the CSV import and the customers a payment or a payment request records.
 */
export const normalizeEmail = (email: string): string => email.trim().toLowerCase();

/** Optional email: empty or null clears it. Stored lowercased, as accounts are. */
const emailSchema = z
  .string({ error: 'email must be text.' })
  .trim()
  .toLowerCase()
  .max(254, 'That email address is too long.')
  .transform((s) => s || null)
  .pipe(z.email('Enter a valid email address, like jane@example.com.').nullable())
  .nullish();

/** Raw phone text; normalised to E.164 by normalizePhone (it needs the `country` hint, a sibling field). */
const phoneSchema = z.string({ error: 'phone must be text.' }).max(40, 'That phone number is too long.').nullish();

const countrySchema = z
  .string({ error: 'country must be a two-letter country code such as NL or US.' })
  .trim()
  .toUpperCase()
  .refine((c) => isSupportedCountry(c), 'country must be a two-letter country code such as NL or US.');

/** Customer tags by name, each checked here so one answer lists every problem with the customer. */
export const customerTagNamesSchema = z
  .array(z.string({ error: 'Tags are given by name.' }), { error: 'tags must be a list of tag names.' })
  .max(20, 'A customer can have at most 20 tags.')
  .superRefine((names, ctx) => {
    for (const name of names) {
      const r = tagNameSchema.safeParse(name);
      // One message for the list (field `tags`), as the tag service reports it.
      if (!r.success) return ctx.addIssue({ code: 'custom', message: r.error.issues[0].message, params: { code: 'invalid_tag' } });
    }
  });

const fields = {
  name: nameSchema,
  email: emailSchema,
  phone: phoneSchema,
  country: countrySchema.optional(),
  address: optionalText(1000, 'The address'),
  tags: customerTagNamesSchema.optional(),
};

export const customerCreateSchema = z.object(fields);
export const customerUpdateSchema = z.object({ ...fields, name: nameSchema.optional() });
export type CustomerCreateInput = z.infer<typeof customerCreateSchema>;
export type CustomerUpdateInput = z.infer<typeof customerUpdateSchema>;

export const customerSearchSchema = z.object({
  q: z.string({ error: 'q must be text.' }).trim().max(120, 'q can have at most 120 characters.').optional(),
  email: z.string({ error: 'email must be text.' }).trim().toLowerCase().max(254).optional(),
  tag: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((t) => (t === undefined ? [] : Array.isArray(t) ? t : [t]).filter(Boolean)),
});

export type PhoneResult = { ok: true; e164: string | null } | { ok: false; message: string };

/**
 * Any common format in, E.164 out. There is no merchant country to assume, so a number without
 * a leading `+` (or `00`-style international prefix) needs the `country` hint (ISO 3166-1 alpha-2)
 * sent alongside it: `{ "phone": "(415) 555-2671", "country": "US" }`. Without it such a number is
 * refused rather than guessed. Extensions are refused too: E.164 cannot carry them.
 */
export function normalizePhone(raw: string | null | undefined, country?: string): PhoneResult {
  if (raw === undefined || raw === null || !raw.trim()) return { ok: true, e164: null };
  try {
    const parsed = parsePhoneNumberWithError(raw, country ? { defaultCountry: country as CountryCode } : undefined);
    if (!parsed.isValid() || parsed.ext) return { ok: false, message: 'Enter a valid phone number, such as +31 6 12345678.' };
    return { ok: true, e164: parsed.number };
  } catch (err) {
    const reason = (err as Error).message;
    if (reason === 'INVALID_COUNTRY') {
      return { ok: false, message: 'Start the number with + and the country code (e.g. +1 415 555 2671), or send a two-letter country with it.' };
    }
    return { ok: false, message: 'Enter a valid phone number, such as +31 6 12345678.' };
  }
}

let countryList: { code: string; label: string }[] | null = null;

/** Countries for the "numbers without +" hint, by English name: "Netherlands (+31)". */
export function countryOptions(): { code: string; label: string }[] {
  if (!countryList) {
    const names = new Intl.DisplayNames(['en'], { type: 'region' });
    countryList = getCountries()
      .map((code) => ({ code, name: names.of(code) ?? code, dial: getCountryCallingCode(code) }))
      .sort((a, b) => a.name.localeCompare(b.name, 'en'))
      .map((c) => ({ code: c.code, label: `${c.name} (+${c.dial})` }));
  }
  return countryList;
}
