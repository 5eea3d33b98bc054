/**
 * Signed tokens in the URLs we send. A recipient token (`?c=`) tells checkout which customer a sent
 * smart link was for, so their payment stops their reminders; a request token (`/r/<token>`) opens a
 * one-off payment request. Both are an id plus an HMAC under a derived key: not guessable, not
 * forgeable, and nothing to store.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const MAC_BYTES = 16;
/** Short request tokens: the random part, then the MAC (12 characters = 9 bytes of base64url). */
export const SHORT_RANDOM_CHARS = 11;
const SHORT_MAC_CHARS = 12;
const SHORT_REQUEST = new RegExp(`^[0-9A-Za-z]{${SHORT_RANDOM_CHARS}}[0-9A-Za-z_-]{${SHORT_MAC_CHARS}}$`);

export class LinkTokens {
  constructor(private readonly key: Buffer) {}

  private mac(purpose: string, id: string): string {
    return createHmac('sha256', this.key).update(`${purpose}:${id}`).digest().subarray(0, MAC_BYTES).toString('base64url');
  }

  private sign(purpose: string, id: string): string {
    return `${id}.${this.mac(purpose, id)}`;
  }

  private verify(purpose: string, token: unknown): string | null {
    if (typeof token !== 'string' || token.length > 120) return null;
    const dot = token.lastIndexOf('.');
    if (dot < 1) return null;
    const id = token.slice(0, dot);
    // Compared as text, not decoded: base64url's last character has spare bits, so decoding would
    // accept several spellings of one signature.
    const given = Buffer.from(token.slice(dot + 1));
    const want = Buffer.from(this.mac(purpose, id));
    return given.length === want.length && timingSafeEqual(given, want) ? id : null;
  }

  /** `cus_….<mac>`: which customer a sent smart link was for. */
  recipient(customerId: string): string {
    return this.sign('recipient', customerId);
  }
  recipientOf(token: unknown): string | null {
    return this.verify('recipient', token);
  }

  /**
   * A payment request's short token, `/r/<token>`: 11 random base62 characters (the request's
   * `token`, ~65 bits) and a 12-character MAC over them (72 bits; 9 bytes, so base64url has no spare
   * bits and one MAC has one spelling) — 23 URL-safe characters, checked with no database read.
   */
  shortRequest(random: string): string {
    return `${random}${this.mac('req', random).slice(0, SHORT_MAC_CHARS)}`;
  }
  shortRequestOf(token: unknown): string | null {
    if (typeof token !== 'string' || !SHORT_REQUEST.test(token)) return null;
    const random = token.slice(0, SHORT_RANDOM_CHARS);
    const given = Buffer.from(token.slice(SHORT_RANDOM_CHARS));
    const want = Buffer.from(this.mac('req', random).slice(0, SHORT_MAC_CHARS));
    return timingSafeEqual(given, want) ? random : null;
  }

  /** `lnk_….<mac>`: the path segment of a one-off payment request, `/r/<token>` (Text-to-Pay before short tokens; still honoured). */
  request(linkId: string): string {
    return this.sign('request', linkId);
  }
  requestOf(token: unknown): string | null {
    return this.verify('request', token);
  }
}
