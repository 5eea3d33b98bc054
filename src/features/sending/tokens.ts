/**
 * Signed tokens in the URLs we send. A recipient token (`?c=`) tells checkout which customer a sent
 * smart link was for, so their payment stops their reminders; a request token (`/r/<token>`) opens a
 * one-off payment request. Both are an id plus an HMAC under a derived key: not guessable, not
 * forgeable, and nothing to store.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const MAC_BYTES = 16;

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

  /** `lnk_….<mac>`: the path segment of a one-off payment request, `/r/<token>`. */
  request(linkId: string): string {
    return this.sign('request', linkId);
  }
  requestOf(token: unknown): string | null {
    return this.verify('request', token);
  }
}
