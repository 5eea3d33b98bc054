/**
 * Small lookups other features make of customers by internal key: the public id an event names, and
 * the contact a list of payments shows (deleted customers too: payments keep naming them).
 */
import type { Db, Queryable } from '../../core/db.ts';

/** What a payment list shows of its customer record. */
export interface CustomerContact {
  id: string;
  name: string | null;
  email: string | null;
  phone: string | null;
}

export function createCustomerRefs({ db }: { db: Db }) {
  return {
    /** A customer's public id by key; `q` is the caller's transaction when inside one. */
    async publicIdOf(q: Queryable, customerKey: number): Promise<string | null> {
      return (await q('customers').where({ id: customerKey }).first('public_id'))?.public_id ?? null;
    },

    /** These customers' public ids and contact details, one query. */
    async contactsByKeys(keys: number[]): Promise<Map<number, CustomerContact>> {
      const out = new Map<number, CustomerContact>();
      const unique = [...new Set(keys)];
      if (!unique.length) return out;
      for (const r of await db('customers').whereIn('id', unique).select('id', 'public_id', 'name', 'email', 'phone')) {
        out.set(Number(r.id), { id: r.public_id, name: r.name ?? null, email: r.email ?? null, phone: r.phone ?? null });
      }
      return out;
    },
  };
}

export type CustomerRefs = ReturnType<typeof createCustomerRefs>;
