/**
 * Colour arithmetic for text on a merchant's colour: WCAG 2 relative luminance and contrast, so a
 * brand colour of any lightness still gets readable text (black or white, whichever contrasts more)
 * and a readable shade for links on white. Computed on the server: no browser-specific CSS needed.
 */

const HEX = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i;
/** The dark text colour of our pages (--ink), used on light brand colours. */
export const DARK_TEXT = '#111827';
export const LIGHT_TEXT = '#ffffff';

function channels(hex: string): [number, number, number] | null {
  const m = HEX.exec(hex);
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : null;
}

/** WCAG 2 relative luminance of `#rrggbb` (0 black … 1 white); null for anything else. */
export function luminance(hex: string): number | null {
  const c = channels(hex);
  if (!c) return null;
  const [r, g, b] = c.map((v) => v / 255).map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** WCAG contrast ratio of two `#rrggbb` colours (1 … 21). */
export function contrastRatio(a: string, b: string): number {
  const la = luminance(a) ?? 0;
  const lb = luminance(b) ?? 0;
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}

/**
 * Text on the colour `hex`: dark or white, whichever contrasts more (white for an unreadable value).
 * For the few mid-tones where our dark ink falls short of 4.5:1, pure black (black or white always
 * reaches 4.58:1 on one of them).
 */
export function textOn(hex: string): string {
  if (luminance(hex) === null) return LIGHT_TEXT;
  const ink = contrastRatio(hex, DARK_TEXT) >= 4.5 ? DARK_TEXT : '#000000';
  return contrastRatio(hex, ink) > contrastRatio(hex, LIGHT_TEXT) ? ink : LIGHT_TEXT;
}

/**
 * `hex` darkened (towards black, in 5 % steps) until it reads on white at `ratio` (4.5:1 for body
 * text): the colour of links and focus rings on a light brand's pages.
 */
export function inkOnWhite(hex: string, ratio = 4.5): string {
  const c = channels(hex);
  if (!c) return DARK_TEXT;
  for (let k = 1; k >= 0; k -= 0.05) {
    const shade = `#${c.map((v) => Math.round(v * k).toString(16).padStart(2, '0')).join('')}`;
    if (contrastRatio(shade, LIGHT_TEXT) >= ratio) return shade;
  }
  return DARK_TEXT;
}
