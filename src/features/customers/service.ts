/**
 * Customers of a merchant: name, email, phone (E.164), postal address, customer tags, and one
 * address per custom kind that an installed channel declares (e.g. an ntfy topic: `addresses`,
 * validated by the channel). Deleting one is a soft delete: payments and deliveries that name the
 * customer keep pointing at the row.
 */
import type { Db, Queryable, Trx } from '../../core/db.ts';
import { containsPattern, inTransaction, isUniqueViolation, rowsByKeys, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { publicId } from '../../core/ids.ts';
import { AppError, ConflictError, NotFoundError, ValidationError, fieldErrorsFromZod, type FieldError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { whereMadeBy, type OwnScope } from '../../core/access.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import type { Tag, TagService } from '../tags/index.ts';
import { tagRef } from '../tags/index.ts';
import { customerCreateSchema, customerSearchSchema, customerUpdateSchema, normalizeEmail, normalizePhone } from './schemas.ts';
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
  /** Addresses of channels' own kinds, by kind (e.g. `{ ntfy_topic: "acme-jane" }`). */
  addresses: Record<string, string>;
  tags: Tag[];
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

/** What lists and batches of other features show of a customer. */
export interface CustomerSummary {
  key: number;
  id: string;
  name: string;
  email: string | null;
  phone: string | null;
  deleted: boolean;
}

const fromRow = (r: any, tags: Tag[] = [], addresses: Record<string, string> = {}): Customer => ({
  key: r.id,
  id: r.public_id,
  merchantKey: r.merchant_id,
  name: r.name,
  email: r.email ?? null,
  phone: r.phone ?? null,
  address: r.address ?? null,
  addresses,
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
    addresses: c.addresses,
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

/** A custom address kind an installed channel needs (deliveries' channel directory provides them). */
export interface CustomerAddressKind {
  kind: string;
  label: string;
  parse(value: string): { ok: true; value: string } | { ok: false; message: string };
}

/** The most custom addresses one request may set. */
const MAX_ADDRESS_KINDS = 20;

/**
 * `addresses: { "<kind>": "value" | null | "" }` → values by kind (null clears), each checked by its
 * channel's parse; unknown kinds and bad values are field errors (`addresses.<kind>`).
 */
export function parseAddresses(raw: unknown, kinds: CustomerAddressKind[]): { values: Record<string, string | null> | undefined; errors: FieldError[] } {
  if (raw === undefined) return { values: undefined, errors: [] };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { values: undefined, errors: [{ field: 'addresses', code: 'invalid_addresses', message: 'addresses must be an object of address kinds and values, such as { "ntfy_topic": "…" }.' }] };
  }
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > MAX_ADDRESS_KINDS) return { values: undefined, errors: [{ field: 'addresses', code: 'invalid_addresses', message: `Give at most ${MAX_ADDRESS_KINDS} addresses.` }] };
  const values: Record<string, string | null> = {};
  const errors: FieldError[] = [];
  for (const [key, value] of entries) {
    const kind = kinds.find((k) => k.kind === key);
    const field = `addresses.${key.slice(0, 40)}`;
    if (!kind) {
      const known = kinds.map((k) => k.kind).join(', ');
      errors.push({ field, code: 'unknown_address_kind', message: known ? `No installed channel uses “${key.slice(0, 40)}” addresses (known: ${known}).` : 'No installed channel uses addresses of its own.' });
    } else if (value === null || (typeof value === 'string' && !value.trim())) {
      values[kind.kind] = null;
    } else if (typeof value !== 'string') {
      errors.push({ field, code: 'invalid_address', message: `The ${kind.label} must be text.` });
    } else {
      const parsed = kind.parse(value);
      if (parsed.ok) values[kind.kind] = parsed.value;
      else errors.push({ field, code: 'invalid_address', message: parsed.message });
    }
  }
  return { values, errors };
}

/**
 * validateCustomer plus the custom addresses, throwing. A bad phone on its own answers the specific
 * code `invalid_phone` (API.md); with other bad fields it is one of the `errors`.
 */
function parseCustomer<S extends typeof customerCreateSchema | typeof customerUpdateSchema>(
  schema: S,
  raw: unknown,
  kinds: CustomerAddressKind[],
): { input: z.infer<S>; phone: string | null | undefined; addresses: Record<string, string | null> | undefined } {
  const v = validateCustomer(schema, raw);
  const a = parseAddresses((raw as { addresses?: unknown } | null | undefined)?.addresses, kinds);
  if (v.ok && !a.errors.length) return { ...v, addresses: a.values };
  const errors = [...(v.ok ? [] : v.errors), ...a.errors];
  if (errors.length === 1 && errors[0].code === 'invalid_phone') {
    throw new AppError('invalid_phone', 422, errors[0].message, { errors });
  }
  throw new ValidationError(errors);
}

/** What the dashboard list asks for. */
export interface DashboardCustomerSearch {
  q?: string;
  /** A customer tag's name. */
  tag?: string;
  page?: number;
  perPage?: number;
  /** Only the customers these added (an agent's); absent: all. */
  only?: OwnScope | null;
}

/** Who added a customer: a team member or an API key (neither: a payer, an import, or before this was recorded). */
export interface CustomerMaker {
  userKey?: number | null;
  apiKeyKey?: number | null;
}
const makerColumns = (by: CustomerMaker | undefined) => ({ created_by_user_id: by?.userKey ?? null, api_key_id: by?.apiKeyKey ?? null });

/** A customer that passed validateCustomer(customerCreateSchema): ready to be written. */
export interface ValidCustomer {
  input: z.infer<typeof customerCreateSchema>;
  phone: string | null | undefined;
  /** Custom addresses by kind, already checked by their channels (parseAddresses). */
  addresses?: Record<string, string>;
}

function* chunks<T>(list: T[], size: number): Generator<T[]> {
  for (let i = 0; i < list.length; i += size) yield list.slice(i, i + size);
}

/** Custom addresses of customers, by customer key. */
async function addressesOf(q: Db | Trx, customerKeys: number[]): Promise<Map<number, Record<string, string>>> {
  const out = new Map<number, Record<string, string>>();
  for (const chunk of chunks([...new Set(customerKeys)], 500)) {
    for (const r of (await q('customer_addresses').whereIn('customer_id', chunk).select('customer_id', 'kind', 'value')) as { customer_id: number; kind: string; value: string }[]) {
      const key = Number(r.customer_id);
      out.set(key, { ...(out.get(key) ?? {}), [r.kind]: r.value });
    }
  }
  return out;
}

/** What the form shows by the email field and the API's 409 says. */
export const EMAIL_TAKEN = 'A customer with this email address already exists.';

/** 409 `email_taken`, with the existing customer's id (`existing_id`) for the API and the form's link. */
export function emailTakenError(existingId: string): AppError {
  return new AppError('email_taken', 409, `A customer with this email address already exists (${existingId}).`, {
    errors: [{ field: 'email', code: 'email_taken', message: EMAIL_TAKEN }],
    extra: { existing_id: existingId },
  });
}

export interface CustomerDeps {
  db: Db;
  clock: Clock;
  tags: TagService;
  /** The custom address kinds installed channels declare (none when omitted). */
  addressKinds?: () => CustomerAddressKind[];
}

export function createCustomerService({ db, clock, tags, addressKinds = () => [] }: CustomerDeps) {
  const scoped = (q: Db | Trx, merchantKey: number) => q('customers').where({ merchant_id: merchantKey }).whereNull('deleted_at');
  /** The merchant's live customers `only` added (all of them without `only`). */
  const visible = (q: Db | Trx, merchantKey: number, only: OwnScope | null | undefined) => whereMadeBy(scoped(q, merchantKey), only, { user: 'customers.created_by_user_id', key: 'customers.api_key_id' });

  const withTags = async (rows: any[]): Promise<Customer[]> => {
    if (!rows.length) return [];
    const keys = rows.map((r) => r.id);
    const [byCustomer, addresses] = await Promise.all([tags.forCustomers(keys), addressesOf(db, keys)]);
    return rows.map((r) => fromRow(r, byCustomer.get(r.id) ?? [], addresses.get(Number(r.id)) ?? {}));
  };

  /** Sets (or, for null, removes) a customer's custom addresses. */
  async function setAddresses(trx: Trx, customerKey: number, values: Record<string, string | null>): Promise<void> {
    const cleared = Object.keys(values).filter((k) => values[k] === null);
    const set = Object.entries(values).filter((e): e is [string, string] => e[1] !== null);
    if (cleared.length) await trx('customer_addresses').where({ customer_id: customerKey }).whereIn('kind', cleared).del();
    if (set.length) {
      await trx('customer_addresses')
        .insert(set.map(([kind, value]) => ({ customer_id: customerKey, kind, value })))
        .onConflict(['customer_id', 'kind'])
        .merge(['value']);
    }
  }

  /** Live customers of the merchant matching the filters (any of the tag names). */
  const filtered = (merchantKey: number, f: { q?: string; email?: string; tags?: string[]; phone?: boolean; only?: OwnScope | null }) => {
    const q = visible(db, merchantKey, f.only).select('customers.*');
    if (f.q) {
      const like = containsPattern(f.q);
      // A query without letters ("06 1234", "+31 6") is also looked for in the phone number.
      const digits = f.phone && !/\p{L}/u.test(f.q) ? f.q.replace(/\D/g, '').replace(/^0+/, '') : '';
      q.andWhere((b) => {
        b.whereRaw('name like ? escape ?', [like, '\\']).orWhereRaw('email like ? escape ?', [like.toLowerCase(), '\\']);
        if (digits.length >= 3) b.orWhere('phone', 'like', `%${digits}%`);
        // Custom addresses (an ntfy topic…) are found too.
        b.orWhereIn('customers.id', db('customer_addresses').whereRaw('value like ? escape ?', [like, '\\']).select('customer_id'));
      });
    }
    if (f.email) {
      const email = normalizeEmail(f.email);
      q.andWhere((b) => b.where('email_normalized', email).orWhere('email', email));
    }
    if (f.tags?.length) q.whereIn('customers.id', tags.taggedWithAny(merchantKey, 'customer', f.tags));
    return q;
  };

  /**
   * Which of these emails (normalised: normalizeEmail) live customers of the merchant already have.
   * The unique `email_normalized` decides; `email` itself is looked at too, for the later duplicates
   * a migration found (kept, with email_normalized NULL).
   */
  async function emailsTaken(q: Db | Trx, merchantKey: number, emails: (string | null | undefined)[]): Promise<Set<string>> {
    const wanted = [...new Set(emails.filter((e): e is string => Boolean(e)).map(normalizeEmail))];
    const taken = new Set<string>();
    for (const chunk of chunks(wanted, 500)) {
      const rows = await scoped(q, merchantKey)
        .andWhere((b) => b.whereIn('email_normalized', chunk).orWhereIn('email', chunk))
        .select('email');
      for (const r of rows) taken.add(normalizeEmail(String(r.email)));
    }
    return taken;
  }

  /** The key and public id of the merchant's live customer with this (normalised) email, if any, but `exceptKey`. */
  async function withEmail(q: Db | Trx, merchantKey: number, email: string, exceptKey?: number): Promise<{ key: number; id: string } | null> {
    const first = async (column: 'email_normalized' | 'email') => {
      const b = scoped(q, merchantKey).andWhere(column, email);
      if (exceptKey !== undefined) b.andWhereNot('id', exceptKey);
      const r = await b.orderBy('id').first('id', 'public_id');
      return r ? { key: Number(r.id), id: String(r.public_id) } : null;
    };
    return (await first('email_normalized')) ?? (await first('email'));
  }

  /** Throws 409 `email_taken` when another live customer of the merchant has this email. */
  async function refuseTaken(q: Db | Trx, merchantKey: number, email: string, exceptKey?: number): Promise<void> {
    const existing = await withEmail(q, merchantKey, email, exceptKey);
    if (existing) throw emailTakenError(existing.id);
  }

  /**
   * Inserts a customer row in `trx`. Two writers racing with one email: the unique index on
   * (merchant_id, email_normalized) lets one in; the other's insert fails and `onTaken` decides.
   */
  async function insertRow(trx: Trx, row: Record<string, unknown>, onTaken: (email: string) => Promise<number>): Promise<number> {
    try {
      const [key] = await trx('customers').insert(row);
      return Number(key);
    } catch (err) {
      if (row.email_normalized && isUniqueViolation(err)) return onTaken(String(row.email_normalized));
      throw err;
    }
  }

  const service = {
    /** One of the merchant's live customers; one `only` did not add is a 404 too. */
    async get(merchantKey: number, id: string, only: OwnScope | null = null): Promise<Customer> {
      const row = await visible(db, merchantKey, only).andWhere({ public_id: id }).first();
      if (!row) throw new NotFoundError('No such customer.');
      return (await withTags([row]))[0];
    },

    async getByKey(key: number): Promise<Customer | null> {
      const row = await db('customers').where({ id: key }).first();
      return row ? (await withTags([row]))[0] : null;
    },

    /** A new customer; an email another live customer of the merchant has (any case) → 409 `email_taken`. */
    async create(merchantKey: number, raw: unknown, by?: CustomerMaker): Promise<Customer> {
      const { input, phone, addresses } = parseCustomer(customerCreateSchema, raw, addressKinds());
      const email = input.email ? normalizeEmail(input.email) : null;
      if (email) await refuseTaken(db, merchantKey, email);
      const id = publicId('cus');
      try {
        await inTransaction(db, async (trx) => {
          const now = clock.now();
          const key = await insertRow(
            trx,
            {
              public_id: id,
              merchant_id: merchantKey,
              name: input.name,
              email: input.email ?? null,
              email_normalized: email,
              phone: phone ?? null,
              address: input.address ?? null,
              ...makerColumns(by),
              created_at: now,
              updated_at: now,
            },
            async (taken) => {
              await refuseTaken(trx, merchantKey, taken);
              throw new Error('customers: unique email violation without a customer holding it');
            },
          );
          if (input.tags?.length) await tags.setCustomerTags(trx, merchantKey, key, input.tags);
          if (addresses) await setAddresses(trx, key, addresses);
        });
      } catch (err) {
        // Lost the race to a create that committed meanwhile: look again now it is visible.
        if (email && isUniqueViolation(err)) await refuseTaken(db, merchantKey, email);
        throw err;
      }
      return service.get(merchantKey, id);
    },

    /**
     * Changes the given fields; `null` clears email, phone or address; `tags` replaces the set;
     * `addresses` changes the kinds it names (null or "" removes one).
     */
    async update(merchantKey: number, id: string, raw: unknown, only: OwnScope | null = null): Promise<Customer> {
      const customer = await service.get(merchantKey, id, only);
      const { input, phone, addresses } = parseCustomer(customerUpdateSchema, raw, addressKinds());
      const row: Record<string, unknown> = {};
      if (input.name !== undefined) row.name = input.name;
      if (input.email !== undefined) {
        row.email = input.email;
        const next = input.email ? normalizeEmail(input.email) : null;
        // Unchanged (but for case): the column stays as it is (NULL for a duplicate kept by the migration).
        if (next !== (customer.email ? normalizeEmail(customer.email) : null)) {
          row.email_normalized = next;
          if (next) await refuseTaken(db, merchantKey, next, customer.key);
        }
      }
      if (phone !== undefined) row.phone = phone;
      if (input.address !== undefined) row.address = input.address;
      if (!Object.keys(row).length && input.tags === undefined && addresses === undefined) return customer;
      try {
        await inTransaction(db, async (trx) => {
          await trx('customers').where({ id: customer.key }).update({ ...row, updated_at: clock.now() });
          if (input.tags !== undefined) await tags.setCustomerTags(trx, merchantKey, customer.key, input.tags);
          if (addresses) await setAddresses(trx, customer.key, addresses);
        });
      } catch (err) {
        // Another writer took the address between the check and the update.
        if (typeof row.email_normalized === 'string' && isUniqueViolation(err)) await refuseTaken(db, merchantKey, row.email_normalized, customer.key);
        throw err;
      }
      return service.get(merchantKey, id);
    },

    async remove(merchantKey: number, id: string): Promise<void> {
      const customer = await service.get(merchantKey, id);
      const now = clock.now();
      // A deleted customer's email is free again for a new customer.
      await db('customers').where({ id: customer.key }).whereNull('deleted_at').update({ deleted_at: now, updated_at: now, email_normalized: null });
    },

    /** Live customers of this merchant by public id (unknown ids are left out). */
    async getMany(merchantKey: number, ids: string[], only: OwnScope | null = null): Promise<Customer[]> {
      if (!ids.length) return [];
      return withTags(await visible(db, merchantKey, only).whereIn('public_id', ids));
    },

    /** Every live customer carrying the customer tag with this public id. */
    async withTag(merchantKey: number, tagKey: number): Promise<Customer[]> {
      const rows = await scoped(db, merchantKey)
        .whereIn('id', tags.customersWithTag(tagKey))
        .orderBy('id');
      return withTags(rows);
    },

    /** Adds a customer tag (kind `customer`, by public id); true when the customer did not have it yet. */
    async applyTag(merchantKey: number, customerId: string, tagId: string): Promise<boolean> {
      const customer = await service.get(merchantKey, customerId);
      return inTransaction(db, async (trx) => {
        const [tagKey] = await tags.keysForIds(trx, merchantKey, [tagId], 'customer', 'tag');
        if (!(await tags.addCustomerTag(trx, customer.key, tagKey))) return false;
        await trx('customers').where({ id: customer.key }).update({ updated_at: clock.now() });
        return true;
      });
    },

    /** Removes a customer tag; true when the customer had it. */
    async removeTag(merchantKey: number, customerId: string, tagId: string): Promise<boolean> {
      const customer = await service.get(merchantKey, customerId);
      return inTransaction(db, async (trx) => {
        const [tagKey] = await tags.keysForIds(trx, merchantKey, [tagId], 'customer', 'tag');
        const removed = await tags.removeCustomerTag(trx, customer.key, tagKey);
        if (removed) await trx('customers').where({ id: customer.key }).update({ updated_at: clock.now() });
        return removed;
      });
    },

    /** Newest first, cursor-paginated; filters `q` (name or email contains), `email` (exact), `tag` (names, any). */
    async list(merchantKey: number, rawQuery: unknown = {}, only: OwnScope | null = null): Promise<Page<Customer>> {
      const page = parseBody(listQuerySchema, rawQuery);
      const f = parseBody(customerSearchSchema, rawQuery);
      const q = filtered(merchantKey, { q: f.q, email: f.email, tags: f.tag, only });
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
      const q = filtered(merchantKey, { q: s.q, tags: s.tag ? [s.tag] : [], phone: true, only: s.only });
      const rows = await q.orderBy('customers.id', 'desc').limit(perPage + 1).offset((page - 1) * perPage);
      return { items: await withTags(rows.slice(0, perPage)), page, perPage, hasMore: rows.length > perPage };
    },

    /**
     * Public id, name, contact and deletion of customers by key, deleted ones too (one query per 500
     * keys), read in the caller's transaction when given: for lists and batches that name customers.
     */
    async summariesByKeys(keys: number[], q: Db | Trx = db): Promise<Map<number, CustomerSummary>> {
      return rowsByKeys(q, 'customers', keys, ['public_id', 'name', 'email', 'phone', 'deleted_at'], (r) => ({
        key: Number(r.id),
        id: r.public_id,
        name: r.name,
        email: r.email ?? null,
        phone: r.phone ?? null,
        deleted: r.deleted_at !== null && r.deleted_at !== undefined,
      }));
    },

    /** Names of the merchant's customers by public id, deleted ones too (one query per 500 ids): what a list of events names. */
    async namesByIds(merchantKey: number, ids: string[]): Promise<Map<string, string>> {
      const out = new Map<string, string>();
      for (const chunk of chunks([...new Set(ids)], 500)) {
        for (const r of await db('customers').where({ merchant_id: merchantKey }).whereIn('public_id', chunk).select('public_id', 'name')) out.set(String(r.public_id), String(r.name));
      }
      return out;
    },

    /** A customer's public id by key; `q` is the caller's transaction when inside one. */
    async publicIdOf(q: Queryable, customerKey: number): Promise<string | null> {
      return (await q('customers').where({ id: customerKey }).first('public_id'))?.public_id ?? null;
    },

    /** Custom addresses by customer key, read in the caller's transaction (reminders address their due plans). */
    addressesOf: (q: Db | Trx, customerKeys: number[]) => addressesOf(q, customerKeys),

    /** The custom address kinds of the installed channels (the customer form shows one field each). */
    addressKinds: (): CustomerAddressKind[] => addressKinds(),

    /**
     * The merchant's live customer with this email (case-insensitive), or a new one with this name,
     * in the caller's transaction: how a payer who came without a signed customer URL is recorded.
     * Returns the customer's key.
     */
    /**
     * The phone (E.164, already validated) and postal address a paying customer entered on a link that
     * collects them: saved on their record in the paying transaction (what they typed last wins).
     */
    async recordContact(trx: Trx, customerKey: number, contact: { phone: string | null; address: string | null }): Promise<void> {
      const row: Record<string, unknown> = {};
      if (contact.phone) row.phone = contact.phone;
      if (contact.address) row.address = contact.address.slice(0, 500);
      if (Object.keys(row).length) await trx('customers').where({ id: customerKey }).whereNull('deleted_at').update({ ...row, updated_at: clock.now() });
    },

    async matchOrCreate(trx: Trx, merchantKey: number, payer: { name: string; email: string }): Promise<number> {
      const email = normalizeEmail(payer.email);
      const found = await withEmail(trx, merchantKey, email);
      if (found) return found.key;
      const now = clock.now();
      return insertRow(trx, { public_id: publicId('cus'), merchant_id: merchantKey, name: payer.name.trim().slice(0, 120) || email, email, email_normalized: email, created_at: now, updated_at: now }, (taken) =>
        matchTaken(trx, merchantKey, taken),
      );
    },

    /**
     * The merchant's live customer with this email, else with this phone (E.164, already normalised),
     * else a new one with both, in the caller's transaction: the customer a payment request names.
     * Returns the customer's key.
     */
    async matchOrCreateContact(trx: Trx, merchantKey: number, contact: { name: string; email: string | null; phone: string | null }, by?: CustomerMaker): Promise<number> {
      const email = contact.email ? normalizeEmail(contact.email) || null : null;
      if (email) {
        const byEmail = await withEmail(trx, merchantKey, email);
        if (byEmail) return byEmail.key;
      }
      if (contact.phone) {
        const byPhone = await scoped(trx, merchantKey).andWhere('phone', contact.phone).orderBy('id').first('id');
        if (byPhone) return Number(byPhone.id);
      }
      const now = clock.now();
      const name = contact.name.trim().slice(0, 120) || email || contact.phone || 'Customer';
      return insertRow(trx, { public_id: publicId('cus'), merchant_id: merchantKey, name, email, email_normalized: email, phone: contact.phone, ...makerColumns(by), created_at: now, updated_at: now }, (taken) =>
        matchTaken(trx, merchantKey, taken),
      );
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
      const refuseClashes = async (q: Db | Trx) => {
        const taken = await emailsTaken(q, merchantKey, items.map((c) => c.input.email));
        const clashes: FieldError[] = items.flatMap((c, i) =>
          c.input.email && taken.has(normalizeEmail(c.input.email)) ? [{ field: `${i}.email`, code: 'email_taken', message: EMAIL_TAKEN }] : [],
        );
        if (clashes.length) throw new ConflictError('email_taken', 'Some email addresses belong to existing customers.', clashes);
      };
      try {
        return await inTransaction(db, (trx) => writeMany(trx, merchantKey, items, refuseClashes));
      } catch (err) {
        // A customer added meanwhile with one of the emails: name the rows, as the check would have.
        if (isUniqueViolation(err)) await refuseClashes(db);
        throw err;
      }
    },
  };

  /** A payer's email taken by a customer created meanwhile (a concurrent payment): that customer is the one. */
  async function matchTaken(trx: Trx, merchantKey: number, email: string): Promise<number> {
    const existing = await withEmail(trx, merchantKey, email);
    if (!existing) throw new Error('customers: unique email violation without a customer holding it');
    return existing.key;
  }

  /** createMany's writing, in its transaction. */
  async function writeMany(trx: Trx, merchantKey: number, items: ValidCustomer[], refuseClashes: (q: Trx) => Promise<void>): Promise<number> {
    await refuseClashes(trx);

    const now = clock.now();
    const ids = items.map(() => publicId('cus'));
    for (const chunk of chunks(items.map((c, i) => ({ c, id: ids[i] })), 200)) {
      await trx('customers').insert(
        chunk.map(({ c, id }) => ({
          public_id: id,
          merchant_id: merchantKey,
          name: c.input.name,
          email: c.input.email ?? null,
          email_normalized: c.input.email ? normalizeEmail(c.input.email) : null,
          phone: c.phone ?? null,
          address: c.input.address ?? null,
          created_at: now,
          updated_at: now,
        })),
      );
    }

    const withAddresses = items.some((c) => c.addresses && Object.keys(c.addresses).length);
    if (items.some((c) => c.input.tags?.length) || withAddresses) {
      const keyOf = new Map<string, number>();
      for (const chunk of chunks(ids, 500)) {
        for (const r of await trx('customers').whereIn('public_id', chunk).select('id', 'public_id')) keyOf.set(r.public_id, Number(r.id));
      }
      await tags.tagCustomers(trx, merchantKey, items.map((c, i) => ({ customerKey: keyOf.get(ids[i])!, names: c.input.tags ?? [] })));
      const rows = items.flatMap((c, i) => Object.entries(c.addresses ?? {}).map(([kind, value]) => ({ customer_id: keyOf.get(ids[i])!, kind, value })));
      for (const chunk of chunks(rows, 500)) await trx('customer_addresses').insert(chunk);
    }
    return items.length;
  }
  return service;
}

export type CustomerService = ReturnType<typeof createCustomerService>;
