/**
 * What the customer and the merchant are told about an amount outcome (a crypto transfer that did
 * not match the price: underpaid, overpaid, paid late) and the merchant's decision on it.
 */
import { formatMoney } from '../../core/money.ts';
import type { Payment } from './service.ts';

/** The customer's side (the receipt): what happened and what to do; null without an outcome. */
export function outcomeForCustomer(p: Pick<Payment, 'outcome' | 'status' | 'currency' | 'amount'>, merchantName: string): { title: string; text: string } | null {
  const o = p.outcome;
  if (!o) return null;
  const got = formatMoney(o.amountReceived, p.currency);
  if (o.resolution === 'dismissed') {
    return { title: 'Settled with the merchant', text: `${merchantName} has marked what you sent (${got}) as settled with you directly, for example returned to you. If you have not heard from them, contact them with the reference below.` };
  }
  if (o.resolution === 'accepted') return { title: 'Accepted', text: `${merchantName} has reviewed what you sent (${got}) and accepted it: this payment is complete.` };
  if (o.kind === 'underpaid') return { title: 'Underpaid', text: `You sent ${got} of ${formatMoney(p.amount, p.currency)} before the time ran out. ${merchantName} has been told and decides: contact them with the reference below to complete the payment or get your money back. Do not send more to the old address.` };
  if (o.kind === 'overpaid') return { title: 'Overpaid', text: `You sent ${got}, more than the price. ${merchantName} has been told and will return the excess: contact them with the reference below if you do not hear from them.` };
  return {
    title: 'Arrived late',
    text: `What you sent arrived after the checkout ended (${got} received in all). ${merchantName} has been told and decides whether to accept it or return it: contact them with the reference below.`,
  };
}

/** The merchant's side (the payment page): what arrived, and what each decision does here. */
export function outcomeForMerchant(p: Pick<Payment, 'outcome' | 'status' | 'currency' | 'amount'>): { title: string; text: string; accept: string | null; dismiss: string } | null {
  const o = p.outcome;
  if (!o) return null;
  const got = formatMoney(o.amountReceived, p.currency);
  const price = formatMoney(p.amount, p.currency);
  const counts = p.status === 'failed';
  const kindWords = o.kind === 'underpaid' ? 'less than the price, before the checkout ended' : o.kind === 'overpaid' ? 'more than the price' : 'after the checkout ended';
  if (o.resolution) {
    return {
      title: o.kind === 'underpaid' ? 'Underpaid' : o.kind === 'overpaid' ? 'Overpaid' : 'Paid late',
      text:
        o.resolution === 'accepted'
          ? `${got} arrived in all (${kindWords}). You accepted it${p.status === 'paid' && o.kind !== 'overpaid' && p.amount === o.amountReceived ? `: the payment is paid for what arrived (${got}).` : '.'}`
          : `${got} arrived in all (${kindWords}). You marked it as settled off-line (returned from your wallet).`,
      accept: null,
      dismiss: '',
    };
  }
  const what =
    o.kind === 'underpaid'
      ? `The customer sent ${got} of ${price} before the checkout ended (underpaid). The money is in your wallet; this payment did not go through.`
      : o.kind === 'overpaid'
        ? `The customer sent ${got} for ${price} (overpaid by ${formatMoney(o.amountReceived - p.amount, p.currency)}). The payment is paid; the excess is in your wallet.`
        : counts
          ? `${got} arrived after the checkout ended (paid late). The money is in your wallet; this payment did not go through and counts nowhere.`
          : `More arrived after this payment was paid (paid late): ${got} in all for ${price}. The excess is in your wallet.`;
  return {
    title: o.kind === 'underpaid' ? 'Underpaid' : o.kind === 'overpaid' ? 'Overpaid' : 'Paid late',
    text: what,
    accept: counts
      ? `marks this payment paid for ${got} and counts it on its link, if the link still has room. A full (or closed) link is never pushed over its limit: the payment then stays flagged.`
      : `you keep the excess; nothing else changes.`,
    dismiss: counts ? `you returned the money (or settled with the customer) from your wallet. The payment stays unpaid.` : `you returned the excess from your wallet.`,
  };
}
