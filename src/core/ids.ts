import { createHash, randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/**
 * CSPRNG bytes drawn a few KiB at a time and each used once (as crypto.randomUUID does): a sweep makes
 * ids by the hundred thousand, and one randomBytes call per id cost more than the rest of the id.
 */
let pool = Buffer.alloc(0);
let poolAt = 0;
function randomByte(): number {
  if (poolAt >= pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  return pool[poolAt++];
}

/** A base62 string from a CSPRNG; 22 characters carry 130 bits. */
export function randomToken(length = 22): string {
  let out = '';
  while (out.length < length) {
    const byte = randomByte();
    // 248 = 4 × 62: bytes above it would favour the first characters.
    if (byte < 248) out += ALPHABET[byte % 62];
  }
  return out;
}

/** Public ids look like `mer_3kTq…`; integer keys never leave the database. */
export function publicId(prefix: string): string {
  return `${prefix}_${randomToken(22)}`;
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}
