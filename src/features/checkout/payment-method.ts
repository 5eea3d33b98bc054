/**
 * How receipts, the dashboard and the API's readers name the way a customer paid: "Visa •••• 4242", "SEPA Direct Debit •••• 3000",
 * "iDEAL". Providers report `{ type, brand?, last4? }` in their own vocabulary (Stripe's
 * `payment_method_details` types and card brands); anything unknown is shown in plain words.
 */
export interface PaymentMethodInfo {
  /** `card`, `sepa_debit`, `ideal`, `paypal`, … */
  type: string;
  /** A card's network: `visa`, `mastercard`, `amex`, … */
  brand?: string | null;
  /** The last four digits of the card or account number. */
  last4?: string | null;
}

const NAMES: Record<string, string> = {
  // card brands
  visa: 'Visa',
  mastercard: 'Mastercard',
  amex: 'American Express',
  american_express: 'American Express',
  discover: 'Discover',
  diners: 'Diners Club',
  jcb: 'JCB',
  unionpay: 'UnionPay',
  cartes_bancaires: 'Cartes Bancaires',
  eftpos_au: 'eftpos',
  maestro: 'Maestro',
  // method types
  card: 'Card',
  sepa_debit: 'SEPA Direct Debit',
  bacs_debit: 'Bacs Direct Debit',
  us_bank_account: 'Bank account',
  ideal: 'iDEAL',
  bancontact: 'Bancontact',
  sofort: 'Sofort',
  giropay: 'giropay',
  eps: 'EPS',
  p24: 'Przelewy24',
  paypal: 'PayPal',
  klarna: 'Klarna',
  link: 'Link',
  apple_pay: 'Apple Pay',
  google_pay: 'Google Pay',
};

/** `some_method` → "Some method" (a method this file does not know yet). */
function plain(id: string): string {
  const words = id.replace(/[_-]+/g, ' ').trim().toLowerCase();
  return words ? words[0].toUpperCase() + words.slice(1) : '';
}

const nameOf = (id: string | null | undefined): string | null => {
  if (typeof id !== 'string' || !id.trim() || id.length > 64) return null;
  const key = id.trim().toLowerCase();
  return NAMES[key] ?? plain(key);
};

/** "Visa •••• 4242"; null when nothing usable was reported. */
export function formatPaymentMethod(method: PaymentMethodInfo | null | undefined): string | null {
  if (!method || typeof method !== 'object') return null;
  const type = nameOf(method.type);
  const brand = nameOf(method.brand);
  const name = brand ?? type;
  if (!name) return null;
  const last4 = typeof method.last4 === 'string' && /^\d{4}$/.test(method.last4) ? method.last4 : null;
  return last4 ? `${name} •••• ${last4}` : name;
}
