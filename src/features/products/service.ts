// The product catalogue: name, description, price in minor units, currency, active.
import { z } from 'zod';
import type { Db, Queryable } from '../../core/db.ts';
import { rowsByKeys, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { ChangeFeed } from '../../core/changes.ts';
import { publicId } from '../../core/ids.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { MAX_MINOR, amountCeilingError } from '../../core/money.ts';
import { currencySchema } from '../merchants/index.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';

export interface Product {
  key: number;
  id: string;
  name: string;
  description: string | null;
  price: number;
  currency: string;
  active: boolean;
  createdAt: Date;
  updatedAt: Date;
  /** How often it is charged; null for a one-time product. */
  recurring: Recurring | null;
  /** Set once the product is deleted (soft delete: links that sold it keep pointing at it). */
  deletedAt: Date | null;
}

const text = (max: number, label: string) =>
  z
    .string()
    .trim()
    .max(max, `${label} can have at most ${max} characters.`)
    .transform((s) => s || null);

/** Price in minor units (e.g. 1250 = €12.50). */
export const minorAmountSchema = z
  .number({ error: 'Enter the amount as a whole number of minor units, e.g. 1250 for 12.50.' })
  .int('Enter the amount as a whole number of minor units, e.g. 1250 for 12.50.')
  .positive('The amount must be more than zero.')
  .max(MAX_MINOR, 'That amount is too large.');

/** A price over its currency's ceiling (core/money.ts maxAmount) → 422 by the `price` field. */
function refuseOverCeiling(price: number, currency: string): void {
  const e = amountCeilingError(price, currency, 'price');
  if (e) throw new ValidationError([e]);
}

export const RECURRING_INTERVALS = ['day', 'week', 'month', 'year'] as const;
export type RecurringInterval = (typeof RECURRING_INTERVALS)[number];
export interface Recurring {
  interval: RecurringInterval;
  /** Every `count` intervals (every 3 months). */
  count: number;
  /** Free days before the first charge (null: none). */
  trialDays: number | null;
}
/** The longest billing period (a year, as subscription providers allow) in each unit. */
const MAX_COUNT: Record<RecurringInterval, number> = { day: 365, week: 52, month: 12, year: 1 };
export const TRIAL_DAYS_MAX = 730;

export const recurringSchema = z
  .strictObject(
    {
      interval: z.enum(RECURRING_INTERVALS, { error: 'interval must be "day", "week", "month" or "year".' }),
      interval_count: z.number({ error: 'interval_count must be a whole number.' }).int('interval_count must be a whole number.').min(1, 'interval_count must be at least 1.').default(1),
      trial_days: z.number({ error: 'trial_days must be a whole number of days.' }).int('trial_days must be a whole number of days.').min(1, 'trial_days must be at least 1 (or leave it out).').max(TRIAL_DAYS_MAX, `trial_days can be at most ${TRIAL_DAYS_MAX}.`).nullish(),
    },
    { error: 'recurring must be { interval, interval_count, trial_days } or null for a one-time product.' },
  )
  .superRefine((r, ctx) => {
    if (r.interval_count > MAX_COUNT[r.interval]) ctx.addIssue({ code: 'custom', path: ['interval_count'], message: `A billing period can be at most a year: at most ${MAX_COUNT[r.interval]} ${r.interval}${MAX_COUNT[r.interval] === 1 ? '' : 's'}.` });
  })
  .transform((r): Recurring => ({ interval: r.interval, count: r.interval_count, trialDays: r.trial_days ?? null }));

/** "every month", "every 3 weeks". */
export function recurringLabel(r: Pick<Recurring, 'interval' | 'count'>): string {
  return r.count === 1 ? `every ${r.interval}` : `every ${r.count} ${r.interval}s`;
}

export const productCreateSchema = z.object({
  name: z.string({ error: 'Enter a product name.' }).trim().min(1, 'Enter a product name.').max(120, 'Keep the name under 120 characters.'),
  description: text(2000, 'The description').nullish(),
  price: minorAmountSchema,
  currency: currencySchema,
  active: z.boolean().default(true),
  recurring: recurringSchema.nullish(),
});
export const productUpdateSchema = productCreateSchema.partial().extend({ active: z.boolean().optional() });

const fromRow = (r: any): Product => ({
  key: r.id,
  id: r.public_id,
  name: r.name,
  description: r.description,
  price: Number(r.price),
  currency: r.currency,
  active: Boolean(r.active),
  createdAt: toDate(r.created_at),
  updatedAt: toDate(r.updated_at),
  deletedAt: toDateOrNull(r.deleted_at),
  recurring: r.recurring_interval ? { interval: r.recurring_interval, count: Number(r.recurring_count ?? 1), trialDays: r.trial_days === null || r.trial_days === undefined ? null : Number(r.trial_days) } : null,
});

/** The product's recurring columns (all null for a one-time product). */
const recurringRow = (r: Recurring | null) => ({ recurring_interval: r?.interval ?? null, recurring_count: r?.count ?? null, trial_days: r?.trialDays ?? null });

export function productJson(p: Product) {
  return {
    id: p.id,
    object: 'product',
    name: p.name,
    description: p.description,
    price: p.price,
    currency: p.currency,
    active: p.active,
    recurring: p.recurring ? { interval: p.recurring.interval, interval_count: p.recurring.count, trial_days: p.recurring.trialDays } : null,
    created_at: p.createdAt.toISOString(),
    updated_at: p.updatedAt.toISOString(),
  };
}

export interface ProductServiceDeps {
  db: Db;
  clock: Clock;
  changes?: ChangeFeed;
  /** Whether a live link sells the product (the links feature answers). */
  soldByLink(productKey: number): Promise<boolean>;
}

export function createProductService({ db, clock, changes, soldByLink }: ProductServiceDeps) {
  const scoped = (merchantKey: number) => db('products').where({ merchant_id: merchantKey }).whereNull('deleted_at');

  return {
    async get(merchantKey: number, id: string): Promise<Product> {
      const r = await scoped(merchantKey).andWhere({ public_id: id }).first();
      if (!r) throw new NotFoundError('No such product.');
      return fromRow(r);
    },

    async getByKey(key: number): Promise<Product | null> {
      const r = await db('products').where({ id: key }).first();
      return r ? fromRow(r) : null;
    },

    async list(merchantKey: number, rawQuery: unknown = {}): Promise<Page<Product>> {
      const q = parseBody(listQuerySchema, rawQuery);
      let afterKey: number | null = null;
      if (q.starting_after) {
        const anchor = await scoped(merchantKey).andWhere({ public_id: q.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of your products.' }]);
        afterKey = anchor.id;
      }
      return pageByIdDesc(scoped(merchantKey).select('*'), { limit: q.limit, afterKey }, (rows) => rows.map(fromRow));
    },

    /** All active products, by name, for pickers. */
    async active(merchantKey: number): Promise<Product[]> {
      return (await scoped(merchantKey).andWhere({ active: true }).orderBy('name')).map(fromRow);
    },

    async create(merchantKey: number, raw: unknown): Promise<Product> {
      const input = parseBody(productCreateSchema, raw);
      refuseOverCeiling(input.price, input.currency);
      const now = clock.now();
      const id = publicId('prod');
      await db('products').insert({
        public_id: id,
        merchant_id: merchantKey,
        name: input.name,
        description: input.description ?? null,
        price: input.price,
        currency: input.currency,
        active: input.active,
        ...recurringRow(input.recurring ?? null),
        created_at: now,
        updated_at: now,
      });
      return this.get(merchantKey, id);
    },

    async update(merchantKey: number, id: string, raw: unknown): Promise<Product> {
      const product = await this.get(merchantKey, id);
      const input = parseBody(productUpdateSchema, raw);
      // A price or currency that changes is held to the ceiling; one left as it was is not re-judged.
      if ((input.price !== undefined && input.price !== product.price) || (input.currency !== undefined && input.currency !== product.currency)) {
        refuseOverCeiling(input.price ?? product.price, input.currency ?? product.currency);
      }
      const row: Record<string, unknown> = {};
      for (const k of ['name', 'description', 'price', 'currency', 'active'] as const) if (input[k] !== undefined) row[k] = input[k];
      if (input.recurring !== undefined) Object.assign(row, recurringRow(input.recurring));
      // Product links are priced in the currency they were created with: keep the two in step.
      if (input.currency !== undefined && input.currency !== product.currency) {
        if (await soldByLink(product.key)) {
          throw new ValidationError([{ field: 'currency', code: 'currency_locked', message: 'Links sell this product, so its currency cannot change. Create a new product instead.' }]);
        }
      }
      if (Object.keys(row).length) {
        await db('products').where({ id: product.key }).update({ ...row, updated_at: clock.now() });
        changes?.notify(); // pay pages show the price and hide inactive products
      }
      return this.get(merchantKey, id);
    },

    /** Soft delete: links that sold it and their payments keep pointing at it. */
    async remove(merchantKey: number, id: string): Promise<void> {
      const product = await this.get(merchantKey, id);
      await db('products').where({ id: product.key }).update({ deleted_at: clock.now(), active: false, updated_at: clock.now() });
      changes?.notify();
    },

    /** Products by key, deleted ones too (one query per 500 keys, in `q` when given): for lists of what sells them. */
    async byKeys(keys: number[], q: Queryable = db): Promise<Map<number, Product>> {
      return rowsByKeys(q, 'products', keys, '*', fromRow);
    },

    /**
     * A correlated subquery of the price of the product whose key is in `productKeyColumn` (e.g.
     * `l.product_id`), for sorting another feature's rows by price without naming this table.
     */
    priceOf: (productKeyColumn: string) => db('products as pp').where('pp.id', db.ref(productKeyColumn)).select('pp.price'),
  };
}

export type ProductService = ReturnType<typeof createProductService>;
