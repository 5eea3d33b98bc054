import { z } from 'zod';
import { formatDay } from '../../core/time.ts';

/** First path segments the app routes itself; they can never be merchant handles. */
export const RESERVED_HANDLES = new Set([
  'app', 'api', 'r', 'p', 'static', 'public', 'login', 'logout', 'signup', 'hooks', 'health', 'metrics',
  'admin', 'assets', 'account', 'billing', 'checkout', 'dashboard', 'docs', 'help', 'pay', 'receipt',
  'receipts', 'settings', 'status', 'support', 'webhooks', 'www', 'about', 'terms', 'privacy',
  'security', 'new', 'null', 'undefined', 'favicon', 'robots', 'sitemap', 'paylink', 'password', 'reset',
]);

export const handleSchema = z
  .string({ error: 'Choose a handle.' })
  .trim()
  .toLowerCase()
  .min(3, 'A handle needs at least 3 characters.')
  .max(40, 'A handle can have at most 40 characters.')
  .regex(/^[a-z]/, 'A handle must start with a letter.')
  .regex(/^[a-z0-9-]+$/, 'Use only lowercase letters, digits and hyphens.')
  .refine((h) => !h.endsWith('-') && !h.includes('--'), 'A handle cannot end with a hyphen or contain two in a row.')
  .refine((h) => !RESERVED_HANDLES.has(h), 'That handle is reserved by Paylink. Please choose another.');

export const emailSchema = z
  .string({ error: 'Enter your email address.' })
  .trim()
  .toLowerCase()
  .max(254, 'That email address is too long.')
  .pipe(z.email('Enter a valid email address, like you@example.com.'));

export const passwordSchema = z
  .string({ error: 'Choose a password.' })
  .min(10, 'Use at least 10 characters.')
  .max(200, 'Use at most 200 characters.');

export const businessNameSchema = z
  .string({ error: 'Enter your business name.' })
  .trim()
  .min(1, 'Enter your business name.')
  .max(120, 'Keep the business name under 120 characters.')
  .refine((s) => !/[\r\n\u2028\u2029]/.test(s), 'The business name cannot contain line breaks.')
  .refine((s) => !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(s), 'The business name cannot contain control characters.');

const CURRENCIES = new Set(Intl.supportedValuesOf('currency'));
const TIMEZONES = new Set([...Intl.supportedValuesOf('timeZone'), 'UTC']);

export const currencySchema = z
  .string({ error: 'Choose a currency.' })
  .trim()
  .toUpperCase()
  .refine((c) => CURRENCIES.has(c), 'Choose a valid ISO 4217 currency code, such as EUR or USD.');

export const timezoneSchema = z.string({ error: 'Choose a time zone.' }).trim().refine((t) => TIMEZONES.has(t), 'Choose a time zone from the list, such as Europe/Amsterdam.');

/**
 * Regional formats a merchant can choose (how the dashboard writes dates and reads typed ones): the
 * common ones for the currencies we see, each written in Latin digits.
 */
export const LOCALES = ['en-GB', 'en-US', 'en-IE', 'en-CA', 'en-AU', 'de-DE', 'de-AT', 'de-CH', 'fr-FR', 'fr-CA', 'nl-NL', 'nl-BE', 'es-ES', 'it-IT', 'pt-PT', 'pt-BR', 'da-DK', 'sv-SE', 'nb-NO', 'fi-FI', 'pl-PL', 'cs-CZ', 'ja-JP'] as const;

export const localeSchema = z
  .string({ error: 'Choose a date format.' })
  .trim()
  .refine((l) => (LOCALES as readonly string[]).includes(l), 'Choose a date format from the list.');

export const colorSchema = z
  .string({ error: 'Choose a brand colour.' })
  .trim()
  .toLowerCase()
  .regex(/^#[0-9a-f]{6}$/, 'Use a colour like #4f46e5.');

export const signupSchema = z.object({
  name: businessNameSchema,
  handle: handleSchema,
  email: emailSchema,
  password: passwordSchema,
});
export type SignupInput = z.infer<typeof signupSchema>;

export const changeEmailSchema = z.object({ email: emailSchema });
export const resetPasswordSchema = z.object({ email: emailSchema, password: passwordSchema });

/** How long raw view rows are kept (months); counters and daily charts are kept for good. */
export const VIEW_RETENTION = { min: 1, max: 120, default: 13 } as const;
/** What the settings page offers; any whole number in range is accepted (a value set another way stays listed). */
const VIEW_RETENTION_CHOICES = [1, 3, 6, 12, 13, 24, 36];

const chooseRetention = 'Choose how long to keep view details.';
// A form posts strings, services and tests may pass numbers: both arrive here as text first.
export const viewRetentionSchema = z.preprocess(
  (v) => (typeof v === 'number' ? String(v) : v),
  z
    .string({ error: chooseRetention })
    .trim()
    .min(1, chooseRetention)
    .regex(/^\d+$/, 'Enter a whole number of months, like 13.')
    .transform(Number)
    .pipe(
      z
        .number()
        .min(VIEW_RETENTION.min, `Keep view details for at least ${VIEW_RETENTION.min} month.`)
        .max(VIEW_RETENTION.max, `Keep view details for at most ${VIEW_RETENTION.max} months (10 years).`),
    ),
);

export const settingsSchema = z.object({
  name: businessNameSchema,
  handle: handleSchema,
  currency: currencySchema,
  timezone: timezoneSchema,
  locale: localeSchema,
  brand_color: colorSchema,
  view_retention_months: viewRetentionSchema,
});
export type SettingsInput = z.infer<typeof settingsSchema>;

export function currencyOptions(): string[] {
  return [...CURRENCIES].sort();
}

/** The regional formats as the settings form offers them: "English (United Kingdom) — 31/12/2026". */
let localeChoices: { value: string; label: string }[] | undefined;
export function localeOptions(): { value: string; label: string }[] {
  const names = new Intl.DisplayNames('en', { type: 'language', languageDisplay: 'standard' });
  localeChoices ??= LOCALES.map((value) => ({ value, label: `${names.of(value)} — ${formatDay('2026-12-31', value)}` }));
  return localeChoices;
}

export function timezoneOptions(): string[] {
  return [...TIMEZONES].sort();
}

/** The retention choices, plus `current` when it is a valid value not among them. */
export function viewRetentionOptions(current: unknown): number[] {
  const parsed = viewRetentionSchema.safeParse(current);
  const all = new Set(VIEW_RETENTION_CHOICES);
  if (parsed.success) all.add(parsed.data);
  return [...all].sort((a, b) => a - b);
}
