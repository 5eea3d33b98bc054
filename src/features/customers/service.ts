/**
 * Customers of a merchant: name, email, phone (E.164), address and customer tags. Deleting one is
 * a soft delete: payments and deliveries that name the customer keep pointing at the row.
 */
import type { Db, Trx } from '../../core/db.ts';
import { containsPattern, inTransaction, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { publicId } from '../../core/ids.ts';
import { AppError, NotFoundError, ValidationError, fieldErrorsFromZod, type FieldError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import type { Tag, TagService } from '../tags/service.ts';
import { tagRef, taggedWithAny } from '../tags/service.ts';
import { customerCreateSchema, customerSearchSchema, customerUpdateSchema, normalizePhone } from './schemas.ts';
import type { z } from 'zod';

export interface Customer {
  key: number;
  id: string;
  merchantKey: number;
  name: string;
  email: string | null;
  /** E.164, e.g. +31612345678. */
  phone: string | null;
  address: string | null;
  tags: Tag[];
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

const fromRow = (r: any, tags: Tag[] = []): Customer => ({
  key: r.id,
  id: r.public_id,
  merchantKey: r.merchant_id,
  name: r.name,
  email: r.email ?? null,
  phone: r.phone ?? null,
  address: r.address ?? null,
  tags,
  createdAt: toDate(r.created_at),
  updatedAt: toDate(r.updated_at),
  deletedAt: toDateOrNull(r.deleted_at),
});

/** The API representation. */
export function customerJson(c: Customer) {
  return {
    id: c.id,
    object: 'customer',
    name: c.name,
    email: c.email,
    phone: c.phone,
    address: c.address,
    tags: c.tags.map(tagRef),
    created_at: c.createdAt.toISOString(),
    updated_at: c.updatedAt.toISOString(),
  };
}

/**
 * Parses a body with zod and normalises the phone, reporting every bad field at once. A bad phone
 * on its own answers the specific code `invalid_phone` (API.md); with other bad fields it is one
 * of the `errors`.
 */
function parseCustomer<S extends typeof customerCreateSchema | typeof customerUpdateSchema>(schema: S, raw: unknown): { input: z.infer<S>; phone: string | null | undefined } {
  const result = schema.safeParse(raw ?? {});
  const errors: FieldError[] = result.success ? [] : fieldErrorsFromZod(result.error.issues);
  let phone: string | null | undefined;
  // Checked even when other fields failed, so one answer lists every problem.
  const body = (raw ?? {}) as { phone?: unknown; country?: unknown };
  const phoneRaw = result.success ? result.data.phone : typeof body.phone === 'string' ? body.phone : undefined;
  const country = result.success ? result.data.country : typeof body.country === 'string' ? body.country.trim().toUpperCase() : undefined;
  if (phoneRaw !== undefined && !errors.some((e) => e.field === 'phone' || e.field === 'country')) {
    const p = normalizePhone(phoneRaw, country);
    if (p.ok) phone = p.e164;
    else errors.push({ field: 'phone', code: 'invalid_phone', message: p.message });
  }
  if (errors.length === 1 && errors[0].code === 'invalid_phone') {
    throw new AppError('invalid_phone', 422, errors[0].message, { errors });
  }
  if (errors.length || !result.success) throw new ValidationError(errors);
  return { input: result.data as z.infer<S>, phone };
}

export function createCustomerService({ db, clock, tags }: { db: Db; clock: Clock; tags: TagService }) {
  const scoped = (q: Db | Trx, merchantKey: number) => q('customers').where({ merchant_id: merchantKey }).whereNull('deleted_at');

  const withTags = async (rows: any[]): Promise<Customer[]> => {
    const byCustomer = await tags.forCustomers(rows.map((r) => r.id));
    return rows.map((r) => fromRow(r, byCustomer.get(r.id) ?? []));
  };

  async function setTags(trx: Trx, merchantKey: number, customerKey: number, names: string[]): Promise<void> {
    const keys = await tags.ensureNamed(trx, merchantKey, names, 'customer');
    await trx('customer_tags').where({ customer_id: customerKey }).del();
    if (keys.length) await trx('customer_tags').insert(keys.map((tag_id) => ({ customer_id: customerKey, tag_id })));
  }

  const service = {
    async get(merchantKey: number, id: string): Promise<Customer> {
      const row = await scoped(db, merchantKey).andWhere({ public_id: id }).first();
      if (!row) throw new NotFoundError('No such customer.');
      return (await withTags([row]))[0];
    },

    async getByKey(key: number): Promise<Customer | null> {
      const row = await db('customers').where({ id: key }).first();
      return row ? (await withTags([row]))[0] : null;
    },

    async create(merchantKey: number, raw: unknown): Promise<Customer> {
      const { input, phone } = parseCustomer(customerCreateSchema, raw);
      const id = publicId('cus');
      await inTransaction(db, async (trx) => {
        const now = clock.now();
        const [key] = await trx('customers').insert({
          public_id: id,
          merchant_id: merchantKey,
          name: input.name,
          email: input.email ?? null,
          phone: phone ?? null,
          address: input.address ?? null,
          created_at: now,
          updated_at: now,
        });
        if (input.tags?.length) await setTags(trx, merchantKey, Number(key), input.tags);
      });
      return service.get(merchantKey, id);
    },

    /** Changes the given fields; `null` clears email, phone or address; `tags` replaces the set. */
    async update(merchantKey: number, id: string, raw: unknown): Promise<Customer> {
      const customer = await service.get(merchantKey, id);
      const { input, phone } = parseCustomer(customerUpdateSchema, raw);
      const row: Record<string, unknown> = {};
      if (input.name !== undefined) row.name = input.name;
      if (input.email !== undefined) row.email = input.email;
      if (phone !== undefined) row.phone = phone;
      if (input.address !== undefined) row.address = input.address;
      if (!Object.keys(row).length && input.tags === undefined) return customer;
      await inTransaction(db, async (trx) => {
        await trx('customers').where({ id: customer.key }).update({ ...row, updated_at: clock.now() });
        if (input.tags !== undefined) await setTags(trx, merchantKey, customer.key, input.tags);
      });
      return service.get(merchantKey, id);
    },

    async remove(merchantKey: number, id: string): Promise<void> {
      const customer = await service.get(merchantKey, id);
      const now = clock.now();
      await db('customers').where({ id: customer.key }).whereNull('deleted_at').update({ deleted_at: now, updated_at: now });
    },

    /** Newest first, cursor-paginated; filters `q` (name or email contains), `email` (exact), `tag` (names, any). */
    async list(merchantKey: number, rawQuery: unknown = {}): Promise<Page<Customer>> {
      const page = parseBody(listQuerySchema, rawQuery);
      const f = parseBody(customerSearchSchema, rawQuery);
      const q = scoped(db, merchantKey).select('customers.*');
      if (f.q) {
        const like = containsPattern(f.q);
        q.andWhere((b) => b.whereRaw('name like ? escape ?', [like, '\\']).orWhereRaw('email like ? escape ?', [like.toLowerCase(), '\\']));
      }
      if (f.email) q.andWhere('email', f.email);
      if (f.tag.length) {
        q.whereIn('customers.id', taggedWithAny(db, merchantKey, { table: 'customer_tags', column: 'customer_id' }, f.tag));
      }
      let afterKey: number | null = null;
      if (page.starting_after) {
        const anchor = await db('customers').where({ merchant_id: merchantKey, public_id: page.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of your customers.' }]);
        afterKey = anchor.id;
      }
      return pageByIdDesc(q, { limit: page.limit, afterKey, idColumn: 'customers.id' }, withTags);
    },
  };
  return service;
}

export type CustomerService = ReturnType<typeof createCustomerService>;
