/**
 * Logo uploads: PNG, JPEG or WebP up to 1 MB, judged by their content (magic bytes, then a full
 * decode), never by their name or declared type. What is stored and served is not the upload but a
 * fresh WebP re-encoded from its pixels (metadata, scripts in text chunks, ICC tricks and trailing
 * bytes stay behind), fitted into LOGO_BOX, addressed by the SHA-256 of its bytes. SVG is never
 * accepted: it is markup, not an image.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { ValidationError } from '../../core/errors.ts';

export const LOGO_MAX_BYTES = 1024 * 1024;
/** Up to 3× the size a pay page shows it (about 160 × 48 CSS px). */
export const LOGO_BOX = { width: 480, height: 144 } as const;
/** A 1 MB PNG can decompress to gigabytes: refuse anything over 25 megapixels before decoding it. */
const MAX_INPUT_PIXELS = 25_000_000;

export interface ProcessedLogo {
  bytes: Buffer;
  sha256: string;
  contentType: 'image/webp';
  width: number;
  height: number;
}

type Kind = 'png' | 'jpeg' | 'webp';

/** The image type the bytes start with, or null. */
export function sniffImage(b: Buffer): Kind | null {
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  return null;
}

const invalid = (code: string, message: string) => new ValidationError([{ field: 'logo', code, message }]);

/** Checks and re-encodes an uploaded logo; a 422 on `logo` for anything that is not a usable PNG, JPEG or WebP. */
export async function processLogo(upload: Buffer, opts: { truncated?: boolean } = {}): Promise<ProcessedLogo> {
  if (opts.truncated || upload.length > LOGO_MAX_BYTES) throw invalid('file_too_large', 'The logo is larger than 1 MB. Save it smaller (a logo needs no more than 480 × 144 pixels) and upload it again.');
  if (!upload.length) throw invalid('empty_file', 'The chosen file is empty. Choose a PNG, JPEG or WebP image.');
  const kind = sniffImage(upload);
  if (!kind) throw invalid('unsupported_type', 'Upload a PNG, JPEG or WebP image. Other files (SVG, GIF, PDF, or a file renamed to .png) are not accepted.');
  let out: { data: Buffer; info: { width: number; height: number } };
  try {
    const image = sharp(upload, { failOn: 'error', limitInputPixels: MAX_INPUT_PIXELS, animated: false });
    const meta = await image.metadata();
    // The decoder must agree with the magic bytes (no polyglots decoded as something else).
    if (meta.format !== kind) throw invalid('unsupported_type', 'Upload a PNG, JPEG or WebP image.');
    out = await image
      .rotate() // the EXIF orientation, applied before the metadata goes
      .resize({ width: LOGO_BOX.width, height: LOGO_BOX.height, fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 90, alphaQuality: 100, effort: 4 })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    if (err instanceof ValidationError) throw err;
    const message = String((err as Error)?.message ?? '');
    if (/pixel limit/i.test(message)) throw invalid('image_too_large', 'The image is too large (more than 25 megapixels). Save it at a logo’s size and upload it again.');
    throw invalid('corrupt_image', 'This image could not be read: the file is damaged or incomplete. Export it again as PNG, JPEG or WebP.');
  }
  return { bytes: out.data, sha256: createHash('sha256').update(out.data).digest('hex'), contentType: 'image/webp', width: out.info.width, height: out.info.height };
}
