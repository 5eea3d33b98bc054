/**
 * Saved payment profiles: a customer saved their card with a provider (the provider keeps the card,
 * e.g. in the merchant's Stripe account; Paylink keeps which provider customer it is and a label
 * such as "Visa •••• 4242"). At most one per (customer, provider). Providers record and drop them
 * through the plugin API; merchants and customers remove them (checkout/profiles.ts asks the
 * provider to forget the card first).
 */
import type { Db, Queryable } from '../../core/db.ts';
import { isUniqueViolation, toDate } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { publicId } from '../../core/ids.ts';

export interface PaymentProfile {
  key: number;
  id: string;
  merchantKey: number;
  customerKey: number;
  provider: string;
  /** The provider's own customer id (e.g. Stripe's `cus_…`). */
  ref: string;
  /** What was saved, for people: "Visa •••• 4242". */
  label: string;
  createdAt: Date;
  updatedAt: Date;
}

const fromRow = (r: any): PaymentProfile => ({
  key: Number(r.id),
  id: r.public_id,
  merchantKey: Number(r.merchant_id),
  customerKey: Number(r.customer_id),
  provider: r.provider,
  ref: r.provider_ref,
  label: r.label,
  createdAt: toDate(r.created_at),
  updatedAt: toDate(r.updated_at),
});

/** The API representation (`GET /customers/:id/payment_profiles`). */
export function paymentProfileJson(p: PaymentProfile) {
  return { id: p.id, object: 'payment_profile', provider: p.provider, label: p.label, created_at: p.createdAt.toISOString(), updated_at: p.updatedAt.toISOString() };
}

/** A label as a provider may set it: one line, 1 to 120 characters. */
export function cleanLabel(label: unknown): string | null {
  if (typeof label !== 'string') return null;
  const one = label.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return one ? one.slice(0, 120) : null;
}

export function createPaymentProfiles({ db, clock }: { db: Db; clock: Clock }) {
  return {
    /** A customer's profiles, oldest first. */
    async forCustomer(customerKey: number): Promise<PaymentProfile[]> {
      return ((await db('customer_payment_profiles').where({ customer_id: customerKey }).orderBy('id')) as any[]).map(fromRow);
    },

    /** Profiles of many customers, by customer key (one query). */
    async byCustomers(customerKeys: number[]): Promise<Map<number, PaymentProfile[]>> {
      const out = new Map<number, PaymentProfile[]>();
      if (!customerKeys.length) return out;
      const rows = (await db('customer_payment_profiles').whereIn('customer_id', [...new Set(customerKeys)]).orderBy('id')) as any[];
      for (const p of rows.map(fromRow)) out.set(p.customerKey, [...(out.get(p.customerKey) ?? []), p]);
      return out;
    },

    /** The profile a customer has with one provider, if any. */
    async find(customerKey: number, provider: string, q: Queryable = db): Promise<PaymentProfile | null> {
      const r = await q('customer_payment_profiles').where({ customer_id: customerKey, provider }).first();
      return r ? fromRow(r) : null;
    },

    async get(merchantKey: number, customerKey: number, id: string): Promise<PaymentProfile | null> {
      const r = typeof id === 'string' && id.length <= 32 ? await db('customer_payment_profiles').where({ merchant_id: merchantKey, customer_id: customerKey, public_id: id }).first() : null;
      return r ? fromRow(r) : null;
    },

    /** Records (or replaces) what a customer saved with a provider. */
    async save(input: { merchantKey: number; customerKey: number; provider: string; ref: string; label: string }): Promise<PaymentProfile> {
      const now = clock.now();
      const where = { customer_id: input.customerKey, provider: input.provider };
      const changed = { merchant_id: input.merchantKey, provider_ref: input.ref, label: input.label, updated_at: now };
      for (let attempt = 0; ; attempt++) {
        if (await db('customer_payment_profiles').where(where).update(changed)) break;
        try {
          await db('customer_payment_profiles').insert({ ...where, ...changed, public_id: publicId('cpp'), created_at: now });
          break;
        } catch (err) {
          // Two settlements of the same payment at once: the other insert won; update it instead.
          if (!isUniqueViolation(err) || attempt > 0) throw err;
        }
      }
      return (await this.find(input.customerKey, input.provider))!;
    },

    /** Removes one profile; false when it was gone already. */
    async remove(profileKey: number): Promise<boolean> {
      return (await db('customer_payment_profiles').where({ id: profileKey }).del()) > 0;
    },

    /** Removes a merchant's profiles with this provider customer (the provider says its cards are gone). */
    async removeByRef(merchantKey: number, provider: string, ref: string): Promise<number> {
      return db('customer_payment_profiles').where({ merchant_id: merchantKey, provider, provider_ref: ref }).del();
    },
  };
}

export type PaymentProfiles = ReturnType<typeof createPaymentProfiles>;
