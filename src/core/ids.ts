import { createHash, randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** A base62 string from a CSPRNG; 22 characters carry 130 bits. */
export function randomToken(length = 22): string {
  const out: string[] = [];
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out.push(ALPHABET[byte % 62]);
    }
  }
  return out.join('');
}

/** Public ids look like `mer_3kTq…`; integer keys never leave the database. */
export function publicId(prefix: string): string {
  return `${prefix}_${randomToken(22)}`;
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}
