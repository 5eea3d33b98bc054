import { z } from 'zod';
import { currencySchema } from '../merchants/index.ts';
import { minorAmountSchema } from '../products/index.ts';
import { linkBrandingInputSchema } from '../branding/index.ts';

export const PATH_MAX = 64;
export const LIMIT_MAX = 1000;

/** Paths start with a letter: `/acme/12.50` is an amount URL, so a path may never look like a number. */
export const pathSchema = z
  .string()
  .trim()
  .min(1, 'Enter a path.')
  .max(PATH_MAX, `A path can have at most ${PATH_MAX} characters.`)
  .refine((p) => !/^\d/.test(p), 'A path cannot start with a digit: addresses like /your-handle/12.50 are amount URLs, which open a payment page for that amount. Start the path with a letter.')
  .refine((p) => /^[a-zA-Z]/.test(p), 'A path must start with a letter.')
  .refine((p) => /^[a-zA-Z0-9-]+$/.test(p), 'Use only lowercase letters, digits and hyphens.')
  .transform((p) => p.toLowerCase());

const optionalText = (max: number, label: string) =>
  z
    .string({ error: `${label} must be text.` })
    .max(max, `${label} can have at most ${max} characters.`)
    .transform((s) => (s.trim() ? s.trim() : null))
    .nullish();

/** Where a redirect URL names the payment (API.md "Refunds"): replaced when the customer is sent there. */
export const PAYMENT_ID_PLACEHOLDER = '{PAYMENT_ID}';

/**
 * A link's redirect URL for one payment: `{PAYMENT_ID}` (also as the URL parser spells it in a path,
 * `%7BPAYMENT_ID%7D`) becomes the payment's id, URL-encoded, so the merchant's page can look it up.
 */
export function redirectUrlFor(url: string, paymentId: string): string {
  return url.replace(/\{PAYMENT_ID\}|%7BPAYMENT_ID%7D/gi, () => encodeURIComponent(paymentId));
}

/**
 * Absolute http(s) URL without credentials; validated when saved, never taken from a query string.
 * It may contain `{PAYMENT_ID}` in its path, query or fragment (not in its host).
 */
export const redirectUrlSchema = z
  .string()
  .trim()
  .max(2000, 'Keep the URL under 2000 characters.')
  .transform((s) => s || null)
  .pipe(
    z
      .url({ protocol: /^https?$/, hostname: /^[^\s]+\.[^\s]+$|^localhost$/, error: 'Enter an absolute URL starting with https:// or http://.' })
      .refine((u) => {
        // zod runs refinements after a failed format check too: an unparsable URL is already reported.
        if (!URL.canParse(u)) return true;
        const url = new URL(u);
        return !url.username && !url.password;
      }, 'The URL cannot contain a user name or password.')
      .refine((u) => !URL.canParse(u) || !/[{}]/.test(new URL(u).host), `${PAYMENT_ID_PLACEHOLDER} can only be in the path, query or fragment of the URL, not in its host.`)
      .nullable(),
  )
  .nullish();

export const paymentLimitSchema = z
  .number({ error: `The payment limit must be a whole number from 1 to ${LIMIT_MAX}, or null for unlimited.` })
  .int(`The payment limit must be a whole number from 1 to ${LIMIT_MAX}.`)
  .min(1, `The payment limit must be a whole number from 1 to ${LIMIT_MAX}.`)
  .max(LIMIT_MAX, `The payment limit can be at most ${LIMIT_MAX}.`)
  .nullable();

export const tagNamesSchema = z.array(z.string({ error: 'Tags are given by name.' }), { error: 'tags must be a list of tag names.' }).max(20, 'A link can have at most 20 tags.');

const common = {
  name: z.string({ error: 'Enter a name for the link.' }).trim().min(1, 'Enter a name for the link.').max(120, 'Keep the name under 120 characters.'),
  path: pathSchema.optional(),
  description: optionalText(2000, 'The description'),
  internal_notes: optionalText(5000, 'Internal notes'),
  payment_limit: paymentLimitSchema.optional(),
  tags: tagNamesSchema.optional(),
  redirect_url: redirectUrlSchema,
  redirect_target: z.enum(['same', 'new'], { error: 'redirect_target must be "same" or "new".' }).optional(),
  active: z.boolean({ error: 'active must be true or false.' }).optional(),
  show_remaining: z.boolean({ error: 'show_remaining must be true or false.' }).optional(),
  allow_coupons: z.boolean({ error: 'allow_coupons must be true or false.' }).optional(),
  // What the checkout collects: validated by collect.ts (nested errors are named like collect.custom_fields[2].options).
  collect: z.unknown().optional(),
  branding: linkBrandingInputSchema.optional(),
};

export const linkCreateSchema = z.discriminatedUnion(
  'type',
  [
    // A fixed `amount`, or `custom_amount` (links/items.ts checks it by its own field paths).
    z.object({ type: z.literal('amount'), amount: minorAmountSchema.nullish(), custom_amount: z.unknown().optional(), currency: currencySchema.optional(), ...common }),
    z.object({ type: z.literal('product'), product_id: z.string({ error: 'Choose a product.' }).min(1, 'Choose a product.'), ...common }),
    z.object({ type: z.literal('items'), items: z.unknown().optional(), custom_amount: z.unknown().optional(), ...common }),
  ],
  { error: 'Choose the link type: "amount", "product" or "items".' },
);
export type LinkCreateInput = z.infer<typeof linkCreateSchema>;

export const linkUpdateSchema = z.object({
  ...common,
  name: common.name.optional(),
  amount: minorAmountSchema.optional(),
  currency: currencySchema.optional(),
  custom_amount: z.unknown().optional(),
  items: z.unknown().optional(),
  type: z.string().optional(),
});
export type LinkUpdateInput = z.infer<typeof linkUpdateSchema>;

export const linkSearchSchema = z.object({
  q: z.string().trim().max(120).optional(),
  status: z.enum(['active', 'inactive', 'limit_reached'], { error: 'status must be "active", "inactive" or "limit_reached".' }).optional(),
  tag: z.union([z.string(), z.array(z.string())]).optional().transform((t) => (t === undefined ? [] : Array.isArray(t) ? t : [t]).filter(Boolean)),
  created_gte: z.string().optional(),
  created_lte: z.string().optional(),
  kind: z.enum(['smart', 'request'], { error: 'kind must be "smart" or "request".' }).optional(),
  source: z.enum(['dashboard', 'api', 'text_to_pay', 'import'], { error: 'source must be "dashboard", "api", "text_to_pay" or "import".' }).optional(),
});
