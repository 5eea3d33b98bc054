/**
 * QR code images of a URL. `qrcode` does the encoding (segments, error correction, mask); we draw
 * its module matrix ourselves so the PNG is exactly size×size pixels with crisp, equal-width modules
 * (qrcode's own `width` option spreads the pixels unevenly, and falls back to another size entirely
 * when the code does not fit). The SVG is qrcode's, scalable for print.
 */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import QRCode from 'qrcode';

export const QR_MIN_SIZE = 100;
export const QR_MAX_SIZE = 2000;
export const QR_DEFAULT_SIZE = 200;
/** The quiet zone the standard asks for, in modules (kept whenever the size allows it). */
const QUIET_ZONE = 4;
/** Bump when the drawing changes, so cached images (ETags) are not reused across versions. */
const RENDER_VERSION = 1;
const ERROR_CORRECTION = 'M' as const;

export type QrFormat = 'png' | 'svg';

function matrix(text: string): { n: number; data: Uint8Array } {
  const qr = QRCode.create(text, { errorCorrectionLevel: ERROR_CORRECTION });
  return { n: qr.modules.size, data: qr.modules.data };
}

/**
 * Whole pixels per module when they fit with the full quiet zone (the leftover pixels widen the
 * margin); a fractional scale with a 2-module quiet zone only when even 1 px per module does not fit.
 */
export function layout(n: number, size: number): { scale: number; offset: number } {
  const whole = Math.floor(size / (n + 2 * QUIET_ZONE));
  const scale = whole >= 1 ? whole : size / (n + 4);
  return { scale, offset: Math.floor((size - n * scale) / 2) };
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(zlib.crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** A size×size 1-bit greyscale PNG of `text` (dark modules black on white). */
export function qrPng(text: string, size: number = QR_DEFAULT_SIZE): Buffer {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`bad QR size ${size}`);
  const { n, data } = matrix(text);
  const { scale, offset } = layout(n, size);
  const stride = 1 + Math.ceil(size / 8); // filter byte + packed pixels
  const raw = Buffer.alloc(stride * size);
  // Which module column each pixel column falls in (-1 = quiet zone).
  const colOf = new Int32Array(size);
  for (let x = 0; x < size; x++) {
    const c = Math.floor((x - offset) / scale);
    colOf[x] = x >= offset && c >= 0 && c < n ? c : -1;
  }
  let prevRow = -2;
  for (let y = 0; y < size; y++) {
    const line = y * stride;
    const rr = Math.floor((y - offset) / scale);
    const r = y >= offset && rr >= 0 && rr < n ? rr : -1;
    if (r === prevRow) {
      raw.copy(raw, line, line - stride, line);
      continue;
    }
    prevRow = r;
    // Filter type 0 (none); greyscale bit 1 = white, 0 = black.
    raw.fill(0xff, line + 1, line + stride);
    if (r < 0) continue;
    for (let x = 0; x < size; x++) {
      const c = colOf[x];
      if (c >= 0 && data[r * n + c]) raw[line + 1 + (x >> 3)] &= ~(0x80 >> (x & 7));
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  // compression, filter, interlace: 0
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** An SVG of `text` with a 4-module quiet zone, `size` px wide by default and scalable (viewBox). */
export async function qrSvg(text: string, size: number = QR_DEFAULT_SIZE): Promise<string> {
  const svg = await QRCode.toString(text, { type: 'svg', errorCorrectionLevel: ERROR_CORRECTION, margin: QUIET_ZONE, width: size });
  // Name the image for screen readers and for whoever opens the file later.
  return svg.replace(/^<svg /, `<svg role="img" aria-label="QR code for ${escapeXml(text)}" `).replace(/>/, `><title>${escapeXml(text)}</title>`);
}

/** A strong validator for the image of `text` at `size` in `format`: same inputs, same bytes. */
export function qrEtag(format: QrFormat, text: string, size: number): string {
  const h = createHash('sha256').update(`${RENDER_VERSION}\n${format}\n${size}\n${ERROR_CORRECTION}\n${text}`).digest('base64url');
  return `"qr-${h.slice(0, 27)}"`;
}
