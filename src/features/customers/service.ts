/**
 * Customers of a merchant: name, email, phone (E.164), address and customer tags. Deleting one is
 * a soft delete: payments and deliveries that name the customer keep pointing at the row.
 */
import type { Db, Trx } from '../../core/db.ts';
import { containsPattern, inTransaction, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { publicId } from '../../core/ids.ts';
import { AppError, ConflictError, NotFoundError, ValidationError, fieldErrorsFromZod, type FieldError } from '../../core/errors.ts';
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

export type CustomerValidation<S extends typeof customerCreateSchema | typeof customerUpdateSchema> =
  | { ok: true; input: z.infer<S>; phone: string | null | undefined }
  | { ok: false; errors: FieldError[] };

/**
 * Validates a customer with zod and normalises the phone, reporting every bad field at once. The
 * API, the dashboard form and the CSV import all go through here, so a row of a file is held to
 * exactly the rules of the form.
 */
export function validateCustomer<S extends typeof customerCreateSchema | typeof customerUpdateSchema>(schema: S, raw: unknown): CustomerValidation<S> {
  const result = schema.safeParse(raw ?? {});
  const errors: FieldError[] = result.success
    ? []
    : fieldErrorsFromZod(result.error.issues).map((e, i) => {
        // A refinement may name its own code (customerTagNamesSchema: invalid_tag).
        const code = (result.error.issues[i] as { params?: { code?: unknown } }).params?.code;
        return typeof code === 'string' ? { ...e, code } : e;
      });
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
  if (errors.length || !result.success) return { ok: false, errors };
  return { ok: true, input: result.data as z.infer<S>, phone };
}

/**
 * validateCustomer, throwing. A bad phone on its own answers the specific code `invalid_phone`
 * (API.md); with other bad fields it is one of the `errors`.
 */
function parseCustomer<S extends typeof customerCreateSchema | typeof customerUpdateSchema>(schema: S, raw: unknown): { input: z.infer<S>; phone: string | null | undefined } {
  const v = validateCustomer(schema, raw);
  if (v.ok) return v;
  if (v.errors.length === 1 && v.errors[0].code === 'invalid_phone') {
    throw new AppError('invalid_phone', 422, v.errors[0].message, { errors: v.errors });
  }
  throw new ValidationError(v.errors);
}

/** What the dashboard list asks for. */
export interface DashboardCustomerSearch {
  q?: string;
  /** A customer tag's name. */
  tag?: string;
  page?: number;
  perPage?: number;
}

/** A customer that passed validateCustomer(customerCreateSchema): ready to be written. */
export interface ValidCustomer {
  input: z.infer<typeof customerCreateSchema>;
  phone: string | null | undefined;
}

function* chunks<T>(list: T[], size: number): Generator<T[]> {
  for (let i = 0; i < list.length; i += size) yield list.slice(i, i + size);
}

export function createCustomerService({ db, clock, tags }: { db: Db; clock: Clock; tags: TagService }) {
  const scoped = (q: Db | Trx, merchantKey: number) => q('customers').where({ merchant_id: merchantKey }).whereNull('deleted_at');

  const withTags = async (rows: any[]): Promise<Customer[]> => {
    const byCustomer = await tags.forCustomers(rows.map((r) => r.id));
    return rows.map((r) => fromRow(r, byCustomer.get(r.id) ?? []));
  };

  /** Live customers of the merchant matching the filters (any of the tag names). */
  const filtered = (merchantKey: number, f: { q?: string; email?: string; tags?: string[]; phone?: boolean }) => {
    const q = scoped(db, merchantKey).select('customers.*');
    if (f.q) {
      const like = containsPattern(f.q);
      // A query without letters ("06 1234", "+31 6") is also looked for in the phone number.
      const digits = f.phone && !/\p{L}/u.test(f.q) ? f.q.replace(/\D/g, '').replace(/^0+/, '') : '';
      q.andWhere((b) => {
        b.whereRaw('name like ? escape ?', [like, '\\']).orWhereRaw('email like ? escape ?', [like.toLowerCase(), '\\']);
        if (digits.length >= 3) b.orWhere('phone', 'like', `%${digits}%`);
      });
    }
    if (f.email) q.andWhere('email', f.email);
    if (f.tags?.length) q.whereIn('customers.id', taggedWithAny(db, merchantKey, { table: 'customer_tags', column: 'customer_id' }, f.tags));
    return q;
  };

  /** Which of these (lowercase) emails live customers of the merchant already have. */
  async function emailsTaken(q: Db | Trx, merchantKey: number, emails: (string | null | undefined)[]): Promise<Set<string>> {
    const wanted = [...new Set(emails.filter((e): e is string => Boolean(e)))];
    const taken = new Set<string>();
    for (const chunk of chunks(wanted, 500)) {
      for (const r of await scoped(q, merchantKey).whereIn('email', chunk).select('email')) taken.add(String(r.email).toLowerCase());
    }
    return taken;
  }

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

    /** Live customers of this merchant by public id (unknown ids are left out). */
    async getMany(merchantKey: number, ids: string[]): Promise<Customer[]> {
      if (!ids.length) return [];
      return withTags(await scoped(db, merchantKey).whereIn('public_id', ids));
    },

    /** Every live customer carrying the customer tag with this public id. */
    async withTag(merchantKey: number, tagKey: number): Promise<Customer[]> {
      const rows = await scoped(db, merchantKey)
        .whereIn('id', db('customer_tags').where({ tag_id: tagKey }).select('customer_id'))
        .orderBy('id');
      return withTags(rows);
    },

    /** Adds a customer tag (kind `customer`, by public id); true when the customer did not have it yet. */
    async applyTag(merchantKey: number, customerId: string, tagId: string): Promise<boolean> {
      const customer = await service.get(merchantKey, customerId);
      return inTransaction(db, async (trx) => {
        const [tagKey] = await tags.keysForIds(trx, merchantKey, [tagId], 'customer', 'tag');
        if (await trx('customer_tags').where({ customer_id: customer.key, tag_id: tagKey }).first()) return false;
        await trx('customer_tags').insert({ customer_id: customer.key, tag_id: tagKey }).onConflict(['customer_id', 'tag_id']).ignore();
        await trx('customers').where({ id: customer.key }).update({ updated_at: clock.now() });
        return true;
      });
    },

    /** Removes a customer tag; true when the customer had it. */
    async removeTag(merchantKey: number, customerId: string, tagId: string): Promise<boolean> {
      const customer = await service.get(merchantKey, customerId);
      return inTransaction(db, async (trx) => {
        const [tagKey] = await tags.keysForIds(trx, merchantKey, [tagId], 'customer', 'tag');
        const n = await trx('customer_tags').where({ customer_id: customer.key, tag_id: tagKey }).del();
        if (n) await trx('customers').where({ id: customer.key }).update({ updated_at: clock.now() });
        return n > 0;
      });
    },

    /** Newest first, cursor-paginated; filters `q` (name or email contains), `email` (exact), `tag` (names, any). */
    async list(merchantKey: number, rawQuery: unknown = {}): Promise<Page<Customer>> {
      const page = parseBody(listQuerySchema, rawQuery);
      const f = parseBody(customerSearchSchema, rawQuery);
      const q = filtered(merchantKey, { q: f.q, email: f.email, tags: f.tag });
      let afterKey: number | null = null;
      if (page.starting_after) {
        const anchor = await db('customers').where({ merchant_id: merchantKey, public_id: page.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of your customers.' }]);
        afterKey = anchor.id;
      }
      return pageByIdDesc(q, { limit: page.limit, afterKey, idColumn: 'customers.id' }, withTags);
    },

    /**
     * The dashboard list: newest first, numbered pages without a COUNT (one extra row says whether a
     * next page exists). `q` matches name or email, and the phone number when it is mostly digits.
     */
    async search(merchantKey: number, s: DashboardCustomerSearch): Promise<{ items: Customer[]; page: number; perPage: number; hasMore: boolean }> {
      const perPage = Math.min(Math.max(Math.floor(s.perPage ?? 25), 1), 100);
      const page = Math.max(1, Math.floor(s.page ?? 1));
      const q = filtered(merchantKey, { q: s.q, tags: s.tag ? [s.tag] : [], phone: true });
      const rows = await q.orderBy('customers.id', 'desc').limit(perPage + 1).offset((page - 1) * perPage);
      return { items: await withTags(rows.slice(0, perPage)), page, perPage, hasMore: rows.length > perPage };
    },

    /** Which of these emails (lowercase) belong to live customers of the merchant. */
    emailsTaken: (merchantKey: number, emails: (string | null | undefined)[]) => emailsTaken(db, merchantKey, emails),

    /**
     * Creates many already-validated customers (validateCustomer) in one transaction: all or none.
     * Refuses emails that a live customer of this merchant already has, with one `email_taken` error
     * per item (field `<index>.email`), before writing anything. Returns how many were created.
     */
    async createMany(merchantKey: number, items: ValidCustomer[]): Promise<number> {
      if (!items.length) return 0;
      return inTransaction(db, async (trx) => {
        const taken = await emailsTaken(trx, merchantKey, items.map((c) => c.input.email));
        const clashes: FieldError[] = items.flatMap((c, i) =>
          c.input.email && taken.has(c.input.email) ? [{ field: `${i}.email`, code: 'email_taken', message: 'A customer with this email address already exists.' }] : [],
        );
        if (clashes.length) throw new ConflictError('email_taken', 'Some email addresses belong to existing customers.', clashes);

        const now = clock.now();
        const ids = items.map(() => publicId('cus'));
        for (const chunk of chunks(items.map((c, i) => ({ c, id: ids[i] })), 200)) {
          await trx('customers').insert(
            chunk.map(({ c, id }) => ({
              public_id: id,
              merchant_id: merchantKey,
              name: c.input.name,
              email: c.input.email ?? null,
              phone: c.phone ?? null,
              address: c.input.address ?? null,
              created_at: now,
              updated_at: now,
            })),
          );
        }

        const names = items.flatMap((c) => c.input.tags ?? []);
        if (names.length) {
          await tags.ensureNamed(trx, merchantKey, names, 'customer');
          const tagKey = new Map(((await trx('tags').where({ merchant_id: merchantKey, kind: 'customer' }).select('id', 'name')) as { id: number; name: string }[]).map((t) => [t.name.toLowerCase(), Number(t.id)]));
          const keyOf = new Map<string, number>();
          for (const chunk of chunks(ids, 500)) {
            for (const r of await trx('customers').whereIn('public_id', chunk).select('id', 'public_id')) keyOf.set(r.public_id, Number(r.id));
          }
          const links = items.flatMap((c, i) => [...new Set((c.input.tags ?? []).map((n) => tagKey.get(n.trim().toLowerCase())!))].map((tag_id) => ({ customer_id: keyOf.get(ids[i])!, tag_id })));
          for (const chunk of chunks(links, 500)) await trx('customer_tags').insert(chunk);
        }
        return items.length;
      });
    },
  };
  return service;
}

export type CustomerService = ReturnType<typeof createCustomerService>;
