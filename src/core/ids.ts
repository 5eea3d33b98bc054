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

/** Base62 digits in ASCII order, so that text comparison (SQLite, utf8mb4_bin) orders them as numbers. */
const SORTED = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * A public id for rows written by the hundred thousand (deliveries, events, plugin records): like
 * publicId (22 base62 characters), but the first 8 are the creation millisecond, so new ids sort
 * after old ones and each insert lands at the right edge of the table's unique id index. With random
 * ids every row of a batch dirtied a different page of that index — a 500-row batch rewrote hundreds
 * of pages, and SQLite's WAL checkpoints of them were most of a sweep's commit time. The other 14
 * characters are random (83 bits): still unguessable, and unique across processes. The time is the
 * process's wall clock, not the app's clock: it orders the index, it means nothing.
 */
export function sortableId(prefix: string): string {
  let t = Date.now();
  let time = '';
  for (let i = 0; i < 8; i++) {
    time = SORTED[t % 62] + time;
    t = Math.floor(t / 62);
  }
  return `${prefix}_${time}${randomToken(14)}`;
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}
