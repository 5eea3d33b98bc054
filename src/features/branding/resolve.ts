// What a pay page looks like: the merchant's branding with a link's overrides on top.
import { inkOnWhite, textOn } from '../../core/color.ts';
import type { Merchant } from '../merchants/index.ts';
import { BUTTON_LABELS, BUTTON_LABEL_WORDS, BUTTON_STYLES, type ButtonLabel, type ButtonStyle, type LinkBranding } from './schemas.ts';

/** What the pay-page templates use. */
export interface PayBranding {
  /** `#rrggbb`: buttons, the merchant mark, the page's tint. */
  color: string;
  /** Text on `color`: dark or white, whichever contrasts more. */
  onColor: string;
  /** `color` darkened until it reads on white (links, focus rings). */
  ink: string;
  /** The logo's path (content-addressed, cached for good), or null: the merchant's initial shows. */
  logoUrl: string | null;
  buttonStyle: ButtonStyle;
  buttonLabel: ButtonLabel;
  /** "Pay", "Buy", "Donate", "Book". */
  buttonWord: string;
}

const SAFE_COLOR = /^#[0-9a-f]{6}$/i;
const LOGO_PATH = /^\/assets\/logos\/[0-9a-f]{64}\.webp$/;
const isStyle = (s: unknown): s is ButtonStyle => (BUTTON_STYLES as readonly unknown[]).includes(s);
const isLabel = (s: unknown): s is ButtonLabel => (BUTTON_LABELS as readonly unknown[]).includes(s);

const memo = new Map<string, PayBranding>();

/**
 * The look of a pay page: `overrides` (a link's) over the merchant's. Every value is checked here
 * too, so nothing odd in a row can reach the page's CSS. Memoised by its inputs (pay pages render
 * once per link version, previews on every keystroke).
 */
export function payBranding(merchant: Pick<Merchant, 'brandColor' | 'logoUrl' | 'buttonStyle' | 'buttonLabel'>, overrides: LinkBranding | null = null): PayBranding {
  const color = (overrides?.color ?? merchant.brandColor).toLowerCase();
  const key = `${color}|${overrides?.logo === 'none' ? '' : merchant.logoUrl ?? ''}|${overrides?.button_style ?? merchant.buttonStyle}|${overrides?.button_label ?? merchant.buttonLabel}`;
  let b = memo.get(key);
  if (b) return b;
  const safe = SAFE_COLOR.test(color) ? color : '#4f46e5';
  const logo = overrides?.logo === 'none' ? null : merchant.logoUrl;
  const style = overrides?.button_style ?? merchant.buttonStyle;
  const label = overrides?.button_label ?? merchant.buttonLabel;
  const buttonLabel = isLabel(label) ? label : 'pay';
  b = {
    color: safe,
    onColor: textOn(safe),
    ink: inkOnWhite(safe),
    logoUrl: logo && LOGO_PATH.test(logo) ? logo : null,
    buttonStyle: isStyle(style) ? style : 'rounded',
    buttonLabel,
    buttonWord: BUTTON_LABEL_WORDS[buttonLabel],
  };
  if (memo.size > 5000) memo.clear();
  memo.set(key, b);
  return b;
}

/** The pay button's text: "Donate €25.00", or for an open amount "Continue to donate". */
export function buttonText(b: Pick<PayBranding, 'buttonLabel' | 'buttonWord'>, amount: string | null): string {
  if (amount) return `${b.buttonWord} ${amount}`;
  return b.buttonLabel === 'pay' ? 'Continue to payment' : `Continue to ${b.buttonLabel}`;
}
