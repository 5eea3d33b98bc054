/**
 * Branding choices (issue 16 part 5): a merchant's logo, colour, button style and button label, and
 * what a link may override. A link's overrides are stored as a small JSON object holding only what
 * it overrides; anything absent follows the merchant's Settings.
 */
import { z } from 'zod';
import { colorSchema } from '../merchants/index.ts';

export const BUTTON_STYLES = ['rounded', 'square', 'pill'] as const;
export type ButtonStyle = (typeof BUTTON_STYLES)[number];
export const BUTTON_STYLE_NAMES: Record<ButtonStyle, string> = { rounded: 'Rounded', square: 'Square', pill: 'Pill' };

export const BUTTON_LABELS = ['pay', 'buy', 'donate', 'book'] as const;
export type ButtonLabel = (typeof BUTTON_LABELS)[number];
export const BUTTON_LABEL_WORDS: Record<ButtonLabel, string> = { pay: 'Pay', buy: 'Buy', donate: 'Donate', book: 'Book' };

/** A link shows the merchant's logo (`inherit`) or none. */
export const LOGO_MODES = ['inherit', 'none'] as const;

export const buttonStyleSchema = z.enum(BUTTON_STYLES, { error: 'Choose a button style: rounded, square or pill.' });
export const buttonLabelSchema = z.enum(BUTTON_LABELS, { error: 'Choose a button label: pay, buy, donate or book.' });

/** The merchant's pay-page look (Settings → Payment page). */
export const merchantBrandingSchema = z.object({ button_style: buttonStyleSchema, button_label: buttonLabelSchema });

/**
 * A link's `branding` as the API takes it: each member optional (left out: unchanged on update), null
 * (or `"inherit"` for the logo) follows the merchant; `branding: null` clears every override.
 */
export const linkBrandingInputSchema = z
  .strictObject(
    {
      logo: z.enum(LOGO_MODES, { error: 'branding.logo must be "inherit" or "none".' }).optional(),
      button_style: buttonStyleSchema.nullable().optional(),
      button_label: buttonLabelSchema.nullable().optional(),
      color: colorSchema.nullable().optional(),
    },
    { error: 'branding must be an object with logo, button_style, button_label and color.' },
  )
  .nullable();
export type LinkBrandingInput = z.infer<typeof linkBrandingInputSchema>;

/** What a link overrides (stored as JSON in links.branding; empty → null). */
export interface LinkBranding {
  logo?: 'none';
  button_style?: ButtonStyle;
  button_label?: ButtonLabel;
  color?: string;
}

/** The overrides after applying `input` to `current` (see linkBrandingInputSchema). */
export function mergeLinkBranding(current: LinkBranding | null, input: LinkBrandingInput | undefined): LinkBranding | null {
  if (input === undefined) return current;
  if (input === null) return null;
  const next: LinkBranding = { ...(current ?? {}) };
  if (input.logo !== undefined) {
    if (input.logo === 'none') next.logo = 'none';
    else delete next.logo;
  }
  for (const key of ['button_style', 'button_label', 'color'] as const) {
    const v = input[key];
    if (v === undefined) continue;
    if (v === null) delete next[key];
    else (next as Record<string, string>)[key] = v;
  }
  return Object.keys(next).length ? next : null;
}

/** The stored JSON → overrides; anything unreadable or unknown is ignored (the merchant's look shows). */
export function parseLinkBranding(stored: unknown): LinkBranding | null {
  if (typeof stored !== 'string' || !stored) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(stored);
  } catch {
    return null;
  }
  const parsed = linkBrandingInputSchema.safeParse(raw);
  return parsed.success ? mergeLinkBranding(null, parsed.data) : null;
}

/** Overrides → the JSON stored in links.branding (null when there are none). */
export function storedLinkBranding(b: LinkBranding | null): string | null {
  return b && Object.keys(b).length ? JSON.stringify(b) : null;
}

/** A link's `branding` in the API: every member present, null (or `"inherit"`) where it follows the merchant. */
export function linkBrandingJson(b: LinkBranding | null) {
  return { logo: b?.logo ?? 'inherit', button_style: b?.button_style ?? null, button_label: b?.button_label ?? null, color: b?.color ?? null };
}

// ---- The link form --------------------------------------------------------------------------------

/** The link form's branding fields as typed ('' = the merchant's). */
export interface LinkBrandingFormValues {
  brand_logo: 'inherit' | 'none';
  brand_button_style: string;
  brand_button_label: string;
  /** Ticked: the link has its own colour (brand_color_value). */
  brand_color_own: boolean;
  brand_color_value: string;
}

export function linkBrandingFormValues(b: LinkBranding | null, merchantColor: string): LinkBrandingFormValues {
  return {
    brand_logo: b?.logo ?? 'inherit',
    brand_button_style: b?.button_style ?? '',
    brand_button_label: b?.button_label ?? '',
    brand_color_own: Boolean(b?.color),
    brand_color_value: b?.color ?? merchantColor,
  };
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

export function postedLinkBrandingValues(body: Record<string, unknown>, merchantColor: string): LinkBrandingFormValues {
  return {
    brand_logo: body.brand_logo === 'none' ? 'none' : 'inherit',
    brand_button_style: text(body.brand_button_style),
    brand_button_label: text(body.brand_button_label),
    brand_color_own: body.brand_color_own === 'on' || body.brand_color_own === '1',
    brand_color_value: text(body.brand_color_value) || merchantColor,
  };
}

/**
 * The form's branding fields → the link's `branding` input (the whole set: what is not chosen follows
 * the merchant), or undefined when the form had no branding fields (an older form: leave it alone).
 * Field errors are reported under the API's names (`branding.color`…).
 */
export function linkBrandingFromForm(body: Record<string, unknown>): LinkBrandingInput | undefined {
  if (body.brand_logo === undefined && body.brand_button_style === undefined && body.brand_button_label === undefined && body.brand_color_own === undefined && body.brand_color_value === undefined) return undefined;
  const own = body.brand_color_own === 'on' || body.brand_color_own === '1';
  return {
    logo: body.brand_logo === 'none' ? 'none' : 'inherit',
    button_style: (text(body.brand_button_style) || null) as ButtonStyle | null,
    button_label: (text(body.brand_button_label) || null) as ButtonLabel | null,
    color: own ? text(body.brand_color_value) : null,
  };
}

/** The link form's choices, with what "From Settings" means for this merchant. */
export function linkBrandingChoices(m: { brandColor: string; logoUrl: string | null; buttonStyle: string; buttonLabel: string }) {
  return {
    hasLogo: Boolean(m.logoUrl),
    styleName: BUTTON_STYLE_NAMES[m.buttonStyle as ButtonStyle] ?? 'Rounded',
    labelWord: BUTTON_LABEL_WORDS[m.buttonLabel as ButtonLabel] ?? 'Pay',
    merchantColor: m.brandColor,
    styles: BUTTON_STYLES.map((value) => ({ value, label: BUTTON_STYLE_NAMES[value] })),
    labels: BUTTON_LABELS.map((value) => ({ value, label: BUTTON_LABEL_WORDS[value] })),
  };
}

/** The API's branding field names → the link form's. */
export const BRANDING_FORM_FIELDS: Record<string, string> = {
  branding: 'brand_button_style',
  'branding.logo': 'brand_logo',
  'branding.button_style': 'brand_button_style',
  'branding.button_label': 'brand_button_label',
  'branding.color': 'brand_color_value',
};
