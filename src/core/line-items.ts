/**
 * Line items: what an amount is made of — a payment request's list, or what an items link's checkout
 * sold. One shape everywhere: stored as JSON text (`[{ description, quantity, unitAmount, productId? }]`),
 * shown with views/pay/_lines.eta, and in the API as `{ product_id?, description, quantity,
 * unit_amount, amount }`. Totals are integer minor units: quantities and unit prices are whole numbers,
 * so nothing is ever rounded, and a total no safe integer can hold is refused.
 */
import { formatMoney } from './money.ts';

export interface LineItem {
  description: string;
  quantity: number;
  /** Minor units of the one currency the items are in. */
  unitAmount: number;
  /** The product sold (an items link's line), when there is one. */
  productId?: string | null;
}

/** The sum of quantity × unit amount, in minor units; null when it does not fit a safe integer. */
export function lineItemsTotal(items: readonly Pick<LineItem, 'quantity' | 'unitAmount'>[]): number | null {
  let total = 0;
  for (const i of items) {
    const line = i.quantity * i.unitAmount;
    if (!Number.isSafeInteger(line)) return null;
    total += line;
    if (!Number.isSafeInteger(total)) return null;
  }
  return total;
}

/** Stored form (null for none). */
export function lineItemsToText(items: readonly LineItem[]): string | null {
  return items.length ? JSON.stringify(items.map((i) => ({ description: i.description, quantity: i.quantity, unitAmount: i.unitAmount, ...(i.productId ? { productId: i.productId } : {}) }))) : null;
}

export function lineItemsFromText(text: string | null | undefined): LineItem[] {
  if (!text) return [];
  const parsed = JSON.parse(text) as LineItem[];
  return Array.isArray(parsed) ? parsed : [];
}

/** The API shape of line items (payments, payment requests, webhook payloads). */
export function lineItemsJson(items: readonly LineItem[]) {
  return items.map((i) => ({ ...(i.productId ? { product_id: i.productId } : {}), description: i.description, quantity: i.quantity, unit_amount: i.unitAmount, amount: i.quantity * i.unitAmount }));
}

/** Lines as views/pay/_lines.eta shows them. */
export function lineItemsView(items: readonly LineItem[], currency: string) {
  return items.map((l) => ({ description: l.description, quantity: l.quantity, unit: formatMoney(l.unitAmount, currency), total: formatMoney(l.quantity * l.unitAmount, currency) }));
}

/** "2 × T-shirt; 1 × Mug": one cell of a CSV export. */
export function lineItemsSummary(items: readonly LineItem[]): string {
  return items.map((i) => `${i.quantity} × ${i.description}`).join('; ');
}
