/**
 * A receipt's key: the receipt page (`/receipt/:paymentId`) shows a payment to whoever has its id, but
 * what changes anything there (cancelling the subscription, forgetting the saved card) also takes
 * `?k=`, an HMAC of the payment id under a derived secret, which only the URLs the customer is given
 * carry (the redirect after paying, the receipt email). The payment id alone travels further: the
 * merchant's redirect URL (`{PAYMENT_ID}`), the API, webhooks, the merchant's logs.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** 16 bytes of MAC in base64url: 22 characters (the last holds 2 spare bits, so the text is compared). */
const KEY_CHARS = 22;

export interface ReceiptKeys {
  of(paymentId: string): string;
  matches(paymentId: string, given: unknown): boolean;
}

export function receiptKeys(secret: Buffer): ReceiptKeys {
  const of = (paymentId: string) => createHmac('sha256', secret).update(`receipt:${paymentId}`).digest().subarray(0, 16).toString('base64url');
  return Object.freeze({
    of,
    matches(paymentId: string, given: unknown): boolean {
      if (typeof given !== 'string' || given.length !== KEY_CHARS) return false;
      return timingSafeEqual(Buffer.from(given), Buffer.from(of(paymentId)));
    },
  });
}
