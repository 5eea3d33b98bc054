/**
 * Smart links: permanent, branded URLs (`/handle/path`). The type (amount | product) never changes;
 * payment limits are enforced by the checkout's atomic slot claim; a deleted link frees its path and
 * answers 404, while its payments stay in reports.
 */
import type { Knex } from 'knex';
import type { Db, Queryable, Trx } from '../../core/db.ts';
import { amountCeilingError } from '../../core/money.ts';
import { containsPattern, inTransaction, isUniqueViolation, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventBus } from '../../core/events.ts';
import { publicId } from '../../core/ids.ts';
import { AppError, ConflictError, NotFoundError, ValidationError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { checkAmountCap, ownScope, whereMadeBy, type OwnScope } from '../../core/access.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import type { TagService, Tag } from '../tags/index.ts';
import { tagRef } from '../tags/index.ts';
import type { ProductService } from '../products/index.ts';
import type { Merchant, MerchantService } from '../merchants/index.ts';
import type { CustomerService } from '../customers/index.ts';
import { PATH_MAX, linkCreateSchema, linkSearchSchema, linkUpdateSchema } from './schemas.ts';
import {
  checkItemProducts,
  customAmountFromText,
  customAmountJson,
  customAmountToText,
  itemProductOf,
  itemRowsOf,
  itemsJson,
  linkItemsFrom,
  parseCustomAmount,
  parseItemsInput,
  replaceItemRows,
  type CustomAmount,
  type ItemRow,
  type LinkItem,
} from './items.ts';

import { collectFrom, collectJson, parseCollect, type Collect } from './collect.ts';
import { linkBrandingJson, mergeLinkBranding, parseLinkBranding, storedLinkBranding, type LinkBranding } from '../branding/index.ts';

export type InactiveReason = 'manual' | 'limit_reached' | 'expired';

/** Where a link came from: the dashboard, the API (with the key), Text-to-Pay, a CSV import. */
export const LINK_SOURCES = ['dashboard', 'api', 'text_to_pay', 'import'] as const;
export type LinkSource = (typeof LINK_SOURCES)[number];
/** Who creates a link: its source and, by the API, the key's internal id. */
export interface CreatedBy {
  source: LinkSource;
  apiKeyKey?: number | null;
  /** The team member who made it (default: the merchant's actor, when a member). */
  userKey?: number | null;
}

/** A links query narrowed to what `only` made (a link's maker: its member, or its API key). */
const madeByColumns = { user: 'l.created_by_user_id', key: 'l.api_key_id' };

/** A smart link's statuses, and a payment request's (read from the requests feature). */
export const SMART_STATUSES = ['active', 'inactive', 'limit_reached'] as const;
export const REQUEST_STATUSES = ['pending', 'paid', 'expired', 'cancelled'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

/** What the Links page shows of the payment request over a request link (the requests feature knows it). */
export interface RequestRef {
  id: string;
  status: RequestStatus;
  badge: { label: string; tone: string };
}

export interface Link {
  key: number;
  id: string;
  merchantKey: number;
  kind: 'smart' | 'request';
  type: 'amount' | 'product' | 'items';
  name: string;
  path: string | null;
  description: string | null;
  internalNotes: string | null;
  amount: number | null;
  currency: string;
  productKey: number | null;
  productId: string | null;
  /** The product's name and current price, for product links (read with the link). */
  productName: string | null;
  productPrice: number | null;
  /** An items link's lines, with their products (empty for other types). */
  items: LinkItem[];
  /** The customer chooses the amount (an amount link without a fixed amount). */
  customAmount: CustomAmount | null;
  paymentLimit: number | null;
  paidCount: number;
  /** Slots held by immediate-capture checkouts under way (links/state.ts holds). */
  heldCount: number;
  active: boolean;
  inactiveReason: InactiveReason | null;
  redirectUrl: string | null;
  redirectTarget: 'same' | 'new';
  showRemaining: boolean;
  /** Customers may enter a coupon code on the pay page. */
  allowCoupons: boolean;
  /** What the checkout collects beyond name and email (null: nothing more). */
  collect: Collect | null;
  /** The pay-page look this link overrides (logo, button, colour); null: the merchant's own. */
  branding: LinkBranding | null;
  views: number;
  /** Views whose raw rows the retention setting removed (the counter keeps them). */
  viewsPruned: number;
  payments: number;
  revenue: number;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
  tags: Tag[];
  /** The customer a link was made for (a payment request, or a link sent to one customer). */
  customerKey: number | null;
  /** When a payment request stops taking payments. */
  expiresAt: Date | null;
  /** A payment request's short `/r/` path segment (null for smart links and for Text-to-Pay links made before requests). */
  requestPath?: string | null;
  /** How it was made (a request link: its request's source), and the API key that made it. */
  source: LinkSource;
  apiKeyKey: number | null;
  /** The team member who made it (null: an API key, an import, or made before members were recorded). */
  createdByUserKey: number | null;
}

export function remaining(link: Pick<Link, 'paymentLimit' | 'paidCount'>): number | null {
  return link.paymentLimit === null ? null : Math.max(0, link.paymentLimit - link.paidCount);
}

export function conversionRate(link: Pick<Link, 'views' | 'payments'>): number {
  return link.views > 0 ? Math.round((link.payments / link.views) * 1000) / 10 : 0;
}

/** What a link shows of the product it sells. */
type LinkProduct = { id: string; name: string; price: number };

/** The one mapper of a links row (with its tags and, for product links, its product). */
const linkFromRow = (r: any, tags: Tag[], product: LinkProduct | null, items: LinkItem[]): Link => ({
  key: r.id,
  id: r.public_id,
  merchantKey: r.merchant_id,
  kind: r.kind,
  type: r.type,
  name: r.name,
  path: r.path,
  description: r.description,
  internalNotes: r.internal_notes,
  amount: r.amount === null || r.amount === undefined ? null : Number(r.amount),
  currency: r.currency,
  productKey: r.product_id ?? null,
  productId: product?.id ?? null,
  productName: product?.name ?? null,
  productPrice: product ? Number(product.price) : null,
  items,
  customAmount: customAmountFromText(r.custom_amount),
  paymentLimit: r.payment_limit ?? null,
  paidCount: Number(r.paid_count),
  heldCount: Number(r.held_count ?? 0),
  active: Boolean(r.active),
  inactiveReason: r.inactive_reason ?? null,
  redirectUrl: r.redirect_url,
  redirectTarget: r.redirect_target,
  showRemaining: Boolean(r.show_remaining),
  allowCoupons: Boolean(r.allow_coupons),
  collect: collectFrom(r.collect),
  branding: parseLinkBranding(r.branding),
  views: Number(r.views_count),
  viewsPruned: Number(r.views_pruned ?? 0),
  payments: Number(r.payments_count),
  revenue: Number(r.revenue),
  createdAt: toDate(r.created_at),
  updatedAt: toDate(r.updated_at),
  deletedAt: toDateOrNull(r.deleted_at),
  tags,
  customerKey: r.customer_id ?? null,
  expiresAt: toDateOrNull(r.expires_at),
  source: (r.source ?? 'dashboard') as LinkSource,
  apiKeyKey: r.api_key_id === null || r.api_key_id === undefined ? null : Number(r.api_key_id),
  createdByUserKey: r.created_by_user_id === null || r.created_by_user_id === undefined ? null : Number(r.created_by_user_id),
});

/** A lowercase slug that starts with a letter and fits a path, from any name. */
export function slugify(name: string): string {
  let s = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (!/^[a-z]/.test(s)) s = `link${s ? '-' + s : ''}`;
  return s.slice(0, PATH_MAX - 4).replace(/-+$/, '');
}

export interface LinkServiceDeps {
  db: Db;
  clock: Clock;
  events: EventBus;
  tags: TagService;
  products: ProductService;
  merchants: Pick<MerchantService, 'byKeys'>;
  customers: Pick<CustomerService, 'summariesByKeys'>;
  baseUrl: string;
  /** The signed token of a one-off payment request link made before payment requests, `/r/<token>`. */
  requestToken: (linkId: string) => string;
  /** The short `/r/` path segments of the payment requests over these request links, by link key (the requests feature knows them). */
  requestPaths?: (linkKeys: number[], q?: Queryable) => Promise<Map<number, string>>;
  /**
   * The requests feature's view of request links (late-bound: requests is built on links): the ids
   * of the merchant's request links whose request has `status`, as a subquery; and the request over
   * each of these links, for the Links page.
   */
  requests?: {
    linkKeysWhere: (merchantKey: number, f: { status: RequestStatus }) => Knex.QueryBuilder;
    refsByLinkKeys: (linkKeys: number[]) => Promise<Map<number, RequestRef>>;
  };
}

/** A one-off payment request for one customer: an amount link, single use, expiring, no path. */
export interface RequestLinkInput {
  name: string;
  description: string | null;
  amount: number;
  currency: string;
  customerKey: number;
  expiresAt: Date;
  /** How many payments it takes (default 1: single use). */
  uses?: number;
  /** The request's source, and the API key that asked for it. */
  by: CreatedBy;
}

export interface DashboardSearch {
  q?: string;
  /** A smart link's status (smart links only), or a payment request's (requests only). */
  status?: (typeof SMART_STATUSES)[number] | RequestStatus;
  tags?: string[];
  createdFrom?: Date | null;
  createdTo?: Date | null;
  sort?: 'created' | 'name' | 'price' | 'payments';
  dir?: 'asc' | 'desc';
  page?: number;
  perPage?: number;
  /** Smart links or payment requests' links only (default: both). */
  kind?: 'smart' | 'request';
  source?: LinkSource;
  /** Made with this API key (internal id; implies source `api`). */
  apiKeyKey?: number;
}

export function createLinkService(deps: LinkServiceDeps) {
  const { db, clock, events, tags, products } = deps;

  const base = (q: Queryable) => q('links as l').select('l.*');

  /**
   * Links from their rows: tags and products read for the whole list at once (two queries; no tags
   * with `tags: false`), through `q` (a caller's transaction) when given.
   */
  const fromRows = async (rows: any[], opts: { q?: Queryable; tags?: boolean } = {}): Promise<Link[]> => {
    if (!rows.length) return [];
    const itemLinks = rows.filter((r) => r.type === 'items').map((r) => Number(r.id));
    const itemRows = itemLinks.length ? await itemRowsOf(opts.q ?? db, itemLinks) : new Map<number, ItemRow[]>();
    const productKeys = rows.filter((r) => r.product_id !== null && r.product_id !== undefined).map((r) => Number(r.product_id));
    for (const list of itemRows.values()) for (const i of list) productKeys.push(i.productKey);
    const [byLink, byKey] = await Promise.all([
      opts.tags === false ? new Map<number, Tag[]>() : tags.forLinks(rows.map((r) => r.id)),
      productKeys.length ? products.byKeys(productKeys, opts.q) : new Map(),
    ]);
    const requestKeys = rows.filter((r) => r.kind === 'request').map((r) => Number(r.id));
    const paths = requestKeys.length && deps.requestPaths ? await deps.requestPaths(requestKeys, opts.q) : new Map<number, string>();
    return rows.map((r) => ({
      ...linkFromRow(r, byLink.get(r.id) ?? [], r.product_id === null || r.product_id === undefined ? null : byKey.get(Number(r.product_id)) ?? null, linkItemsFrom(itemRows.get(Number(r.id)) ?? [], byKey)),
      requestPath: paths.get(Number(r.id)) ?? null,
    }));
  };

  /** The one address of a link: `/<handle>/<path>` for a smart link, `/r/<signed token>` for a request. */
  function urlFor(link: Pick<Link, 'kind' | 'id' | 'path' | 'requestPath'>, merchant: Pick<Merchant, 'handle'>): string {
    if (link.kind === 'request') return `${deps.baseUrl}/r/${link.requestPath ?? deps.requestToken(link.id)}`;
    return `${deps.baseUrl}/${merchant.handle}/${link.path ?? ''}`;
  }

  async function load(q: Queryable, where: Record<string, unknown>): Promise<Link | null> {
    const row = await base(q).where(where).whereNull('l.deleted_at').first();
    return row ? (await fromRows([row]))[0] : null;
  }

  /** `wanted`, or `wanted-2`, `wanted-3`… whichever is free among the merchant's links. */
  async function freePath(q: Queryable, merchantKey: number, wanted: string): Promise<string> {
    const stem = wanted.slice(0, PATH_MAX - 4);
    const taken = new Set(
      ((await q('links').where({ merchant_id: merchantKey }).andWhere((b) => b.where('path', wanted).orWhere('path', 'like', `${stem}-%`)).select('path')) as { path: string }[]).map((r) => r.path),
    );
    if (!taken.has(wanted)) return wanted;
    for (let n = 2; ; n++) if (!taken.has(`${stem}-${n}`)) return `${stem}-${n}`;
  }

  const pathTaken = () =>
    new ConflictError('path_taken', 'You already have a link with this path.', [{ field: 'path', code: 'path_taken', message: 'You already have a link with this path. Choose another.' }]);

  /** `items` as posted, checked against the merchant's products: the rows to keep and the link's currency. */
  async function checkItems(merchant: Merchant, raw: unknown): Promise<{ currency: string; rows: ItemRow[] }> {
    const items = parseItemsInput(raw);
    const found = await Promise.all(items.map((i) => products.get(merchant.key, i.productId).then(itemProductOf, (err) => (err instanceof NotFoundError ? null : Promise.reject(err)))));
    const currency = checkItemProducts(items, found);
    for (const p of found) checkAmountCap(merchant.actor, p!.price, currency, merchant.currency);
    return { currency, rows: items.map((i, n) => ({ productKey: found[n]!.key, quantity: i.quantity })) };
  }

  const setTags = (trx: Trx, link: { key: number; merchantKey: number }, names: string[]) => tags.setLinkTags(trx, link.merchantKey, link.key, names);

  const service = {
    urlFor,

    /** One of the merchant's links; for an actor who sees only their own, another's link is a 404 too. */
    async get(merchant: Pick<Merchant, 'key' | 'actor'>, id: string): Promise<Link> {
      const row = await whereMadeBy(base(db).where({ 'l.public_id': id, 'l.merchant_id': merchant.key }).whereNull('l.deleted_at'), ownScope(merchant.actor), madeByColumns).first();
      if (!row) throw new NotFoundError('No such link.');
      return (await fromRows([row]))[0];
    },

    /**
     * The keys of the merchant's links `only` made, as a subquery (payments and customers an agent may
     * see are those of their own links).
     */
    linkKeysMadeBy(merchantKey: number, only: OwnScope): Knex.QueryBuilder {
      return whereMadeBy(db('links as l').where('l.merchant_id', merchantKey).select('l.id'), only, madeByColumns);
    },
    /** The customers of the merchant's links `only` made, as a subquery. */
    customerKeysOfLinksMadeBy(merchantKey: number, only: OwnScope): Knex.QueryBuilder {
      return whereMadeBy(db('links as l').where('l.merchant_id', merchantKey).whereNotNull('l.customer_id').select('l.customer_id'), only, madeByColumns);
    },

    /**
     * Name and kind of the merchant's links by public id, deleted ones too (one query per 500 ids):
     * what a list of events names.
     */
    async namesByIds(merchantKey: number, ids: string[]): Promise<Map<string, { name: string; kind: 'smart' | 'request'; deleted: boolean }>> {
      const out = new Map<string, { name: string; kind: 'smart' | 'request'; deleted: boolean }>();
      const unique = [...new Set(ids)];
      for (let i = 0; i < unique.length; i += 500) {
        const rows = await db('links').where({ merchant_id: merchantKey }).whereIn('public_id', unique.slice(i, i + 500)).select('public_id', 'name', 'kind', 'deleted_at');
        for (const r of rows) out.set(String(r.public_id), { name: String(r.name), kind: r.kind, deleted: r.deleted_at !== null && r.deleted_at !== undefined });
      }
      return out;
    },

    /**
     * The merchant's live, active smart links close to their payment limit (at least 80 % of it paid,
     * not yet reached), fewest left first: what the dashboard home warns about.
     */
    async nearlySoldOut(merchantKey: number, limit = 5): Promise<{ id: string; name: string; paid: number; limit: number; left: number }[]> {
      const rows = await db('links')
        .where({ merchant_id: merchantKey, kind: 'smart', active: true })
        .whereNull('deleted_at')
        .whereNotNull('payment_limit')
        .andWhereRaw('paid_count < payment_limit')
        .andWhereRaw('paid_count * 5 >= payment_limit * 4')
        .orderByRaw('payment_limit - paid_count')
        .orderBy('id', 'desc')
        .limit(limit)
        .select('public_id', 'name', 'paid_count', 'payment_limit');
      return rows.map((r) => ({ id: String(r.public_id), name: String(r.name), paid: Number(r.paid_count), limit: Number(r.payment_limit), left: Number(r.payment_limit) - Number(r.paid_count) }));
    },

    /** A live (not deleted) smart link by its canonical path, or null. */
    async findByPath(merchantKey: number, path: string): Promise<Link | null> {
      return load(db, { 'l.merchant_id': merchantKey, 'l.path': path, 'l.kind': 'smart' });
    },

    /**
     * Links by key, deleted ones too, for lists and batches of other features: one query per 500
     * keys plus their products (and tags, unless `tags: false`), in `q` (a caller's transaction) when given.
     */
    async byKeys(keys: number[], opts: { q?: Queryable; tags?: boolean } = {}): Promise<Map<number, Link>> {
      const q = opts.q ?? db;
      const unique = [...new Set(keys)];
      const rows: any[] = [];
      for (let i = 0; i < unique.length; i += 500) rows.push(...(await base(q).whereIn('l.id', unique.slice(i, i + 500))));
      return new Map((await fromRows(rows, { ...opts, q })).map((l) => [l.key, l]));
    },

    async getByKey(key: number): Promise<Link | null> {
      const row = await base(db).where('l.id', key).first();
      return row ? (await fromRows([row]))[0] : null;
    },

    /**
     * Creates a smart link. `within` runs in the same transaction once the row exists (sending it to
     * customers, after-payment actions), so a link and what was asked of it commit together or not at all.
     */
    async create(merchant: Merchant, raw: unknown, opts: { within?: (trx: Trx, link: { key: number; id: string }) => Promise<void>; customerKey?: number | null; by?: CreatedBy } = {}): Promise<Link> {
      const input = parseBody(linkCreateSchema, raw);
      const collect = input.collect === undefined ? null : parseCollect(input.collect);
      let amount: number | null = null;
      let currency: string;
      let productKey: number | null = null;
      let customAmount: CustomAmount | null = null;
      let itemRows: ItemRow[] = [];
      if (input.type === 'amount') {
        currency = input.currency ?? merchant.currency;
        if (input.custom_amount !== undefined && input.custom_amount !== null) {
          if (input.amount !== undefined && input.amount !== null) throw new ValidationError([{ field: 'amount', code: 'amount_and_custom_amount', message: 'Give a fixed amount or custom_amount, not both.' }]);
          customAmount = parseCustomAmount(input.custom_amount, currency);
        } else {
          if (input.amount === undefined || input.amount === null) throw new ValidationError([{ field: 'amount', code: 'required', message: 'Give the amount (minor units), or custom_amount to let the customer choose.' }]);
          amount = input.amount;
          const tooLarge = amountCeilingError(amount, currency);
          if (tooLarge) throw new ValidationError([tooLarge]);
        }
      } else if (input.type === 'items') {
        ({ currency, rows: itemRows } = await checkItems(merchant, input.items));
        // An amount the customer adds to the order (a donation, a tip), in the products' currency.
        if (input.custom_amount !== undefined && input.custom_amount !== null) customAmount = parseCustomAmount(input.custom_amount, currency, { forItems: true });
      } else {
        const product = await products.get(merchant.key, input.product_id).catch((err) => {
          if (err instanceof NotFoundError) throw new ValidationError([{ field: 'product_id', code: 'unknown_product', message: 'Choose one of your products.' }]);
          throw err;
        });
        if (!product.active) throw new ValidationError([{ field: 'product_id', code: 'inactive_product', message: 'That product is inactive. Activate it or choose another.' }]);
        productKey = product.key;
        currency = product.currency;
        checkAmountCap(merchant.actor, product.price, currency, merchant.currency);
      }
      if (amount !== null) checkAmountCap(merchant.actor, amount, currency, merchant.currency);
      if (customAmount?.max) checkAmountCap(merchant.actor, customAmount.max, currency, merchant.currency);
      const explicitPath = input.path;
      for (let attempt = 0; ; attempt++) {
        try {
          const id = publicId('lnk');
          await inTransaction(db, async (trx) => {
            if (explicitPath && (await trx('links').where({ merchant_id: merchant.key, path: explicitPath }).first('id'))) throw pathTaken();
            const path = explicitPath ?? (await freePath(trx, merchant.key, slugify(input.name)));
            const now = clock.now();
            const [key] = await trx('links').insert({
              public_id: id,
              merchant_id: merchant.key,
              kind: 'smart',
              type: input.type,
              name: input.name,
              path,
              description: input.description ?? null,
              internal_notes: input.internal_notes ?? null,
              amount,
              currency,
              product_id: productKey,
              custom_amount: customAmountToText(customAmount),
              payment_limit: input.payment_limit ?? null,
              active: input.active ?? true,
              inactive_reason: input.active === false ? 'manual' : null,
              redirect_url: input.redirect_url ?? null,
              redirect_target: input.redirect_target ?? 'same',
              show_remaining: input.show_remaining ?? false,
              allow_coupons: input.allow_coupons ?? false,
              collect: collect ? JSON.stringify(collect) : null,
              branding: storedLinkBranding(mergeLinkBranding(null, input.branding)),
              customer_id: opts.customerKey ?? null,
              source: opts.by?.source ?? 'dashboard',
              api_key_id: opts.by?.apiKeyKey ?? merchant.actor?.apiKeyKey ?? null,
              created_by_user_id: opts.by?.userKey ?? merchant.actor?.userKey ?? null,
              created_at: now,
              updated_at: now,
            });
            if (input.tags?.length) await setTags(trx, { key: Number(key), merchantKey: merchant.key }, input.tags);
            if (itemRows.length) await replaceItemRows(trx, Number(key), itemRows);
            await events.emit(trx, 'link.created', { merchantId: merchant.id, linkId: id, kind: 'smart', type: input.type, name: input.name, path, amount, currency, productId: input.type === 'product' ? input.product_id : null }, merchant.key);
            if (opts.within) await opts.within(trx, { key: Number(key), id });
          });
          return service.get(merchant, id);
        } catch (err) {
          // Two creates racing for the same derived path: the unique index decides; derive again.
          if (isUniqueViolation(err) && !explicitPath && attempt < 5) continue;
          if (isUniqueViolation(err)) throw pathTaken();
          throw err;
        }
      }
    },

    /** Inserts a payment request in the caller's transaction (Text-to-Pay). */
    async createRequest(trx: Trx, merchant: Merchant, input: RequestLinkInput): Promise<{ key: number; id: string }> {
      const id = publicId('lnk');
      const now = clock.now();
      const [key] = await trx('links').insert({
        public_id: id,
        merchant_id: merchant.key,
        kind: 'request',
        type: 'amount',
        name: input.name,
        path: null,
        description: input.description,
        amount: input.amount,
        currency: input.currency,
        payment_limit: input.uses ?? 1,
        active: true,
        redirect_target: 'same',
        customer_id: input.customerKey,
        expires_at: input.expiresAt,
        source: input.by.source,
        api_key_id: input.by.apiKeyKey ?? null,
        created_by_user_id: input.by.userKey ?? merchant.actor?.userKey ?? null,
        created_at: now,
        updated_at: now,
      });
      await events.emit(trx, 'link.created', { merchantId: merchant.id, linkId: id, kind: 'request', type: 'amount', name: input.name, path: null, amount: input.amount, currency: input.currency, productId: null }, merchant.key);
      return { key: Number(key), id };
    },

    async update(merchant: Merchant, id: string, raw: unknown): Promise<Link> {
      const link = await service.get(merchant, id);
      const input = parseBody(linkUpdateSchema, raw);
      if (input.type !== undefined && input.type !== link.type) {
        throw new AppError('immutable_field', 422, 'The link type cannot change. Create a new link instead.', {
          errors: [{ field: 'type', code: 'immutable_field', message: 'The link type cannot change after creation.' }],
        });
      }
      if (link.type !== 'amount' && (input.amount !== undefined || input.currency !== undefined)) {
        throw new ValidationError([{ field: 'amount', code: 'not_an_amount_link', message: link.type === 'items' ? 'An items link takes its prices from its products.' : 'A product link takes its price from the product.' }]);
      }
      if (input.items !== undefined && link.type !== 'items') throw new ValidationError([{ field: 'items', code: 'not_an_items_link', message: 'Only an items link has items.' }]);
      if (input.custom_amount !== undefined && input.custom_amount !== null && link.type === 'product') throw new ValidationError([{ field: 'custom_amount', code: 'not_an_amount_link', message: 'A product link takes its price from the product.' }]);
      // A fixed amount and a customer-chosen one replace each other; both at once is ambiguous.
      if (input.amount !== undefined && input.custom_amount !== undefined && input.custom_amount !== null) throw new ValidationError([{ field: 'amount', code: 'amount_and_custom_amount', message: 'Give a fixed amount or custom_amount, not both.' }]);
      if (input.custom_amount === null && input.amount === undefined && link.customAmount && link.type === 'amount') throw new ValidationError([{ field: 'amount', code: 'required', message: 'Give the fixed amount that replaces the customer-chosen one.' }]);
      let customAmount: CustomAmount | null | undefined;
      if (input.custom_amount !== undefined && input.custom_amount !== null) customAmount = parseCustomAmount(input.custom_amount, input.currency ?? link.currency, { forItems: link.type === 'items' });
      else if (input.amount !== undefined || (input.custom_amount === null && link.type === 'items')) customAmount = null;
      if (customAmount?.max) checkAmountCap(merchant.actor, customAmount.max, input.currency ?? link.currency, merchant.currency);
      let itemRows: ItemRow[] | undefined;
      if (input.items !== undefined) {
        const checked = await checkItems(merchant, input.items);
        if (checked.currency !== link.currency) throw new ValidationError([{ field: 'items[0].product_id', code: 'currency_mismatch', message: `This link is in ${link.currency}: its products must be too (create a new link for ${checked.currency}).` }]);
        itemRows = checked.rows;
      }
      // A new amount or currency is held to the ceiling; an amount left as it was is not re-judged.
      if (link.type === 'amount' && !customAmount && ((input.amount !== undefined && input.amount !== link.amount) || (input.currency !== undefined && input.currency !== link.currency))) {
        const tooLarge = amountCeilingError(input.amount ?? link.amount ?? 0, input.currency ?? link.currency);
        if (tooLarge) throw new ValidationError([tooLarge]);
        checkAmountCap(merchant.actor, input.amount ?? link.amount ?? 0, input.currency ?? link.currency, merchant.currency);
      }
      const row: Record<string, unknown> = {};
      const changed: string[] = [];
      const set = (col: string, value: unknown, current: unknown) => {
        if (value === undefined || value === current) return;
        row[col] = value;
        changed.push(col);
      };
      set('name', input.name, link.name);
      set('path', input.path, link.path);
      set('description', input.description === undefined ? undefined : input.description, link.description);
      set('internal_notes', input.internal_notes === undefined ? undefined : input.internal_notes, link.internalNotes);
      set('amount', input.amount, link.amount);
      set('currency', input.currency, link.currency);
      set('redirect_url', input.redirect_url === undefined ? undefined : input.redirect_url, link.redirectUrl);
      set('redirect_target', input.redirect_target, link.redirectTarget);
      set('show_remaining', input.show_remaining, link.showRemaining);
      set('allow_coupons', input.allow_coupons, link.allowCoupons);
      if (input.collect !== undefined) {
        const collect = parseCollect(input.collect);
        set('collect', collect ? JSON.stringify(collect) : null, link.collect ? JSON.stringify(link.collect) : null);
      }
      set('payment_limit', input.payment_limit, link.paymentLimit);
      if (customAmount !== undefined && JSON.stringify(customAmount) !== JSON.stringify(link.customAmount)) {
        row.custom_amount = customAmountToText(customAmount);
        if (customAmount) row.amount = null;
        changed.push('custom_amount');
      }
      const itemsChanged = itemRows !== undefined && JSON.stringify(itemRows) !== JSON.stringify(link.items.map((i) => ({ productKey: i.product.key, quantity: i.quantity })));
      if (itemsChanged) changed.push('items');
      set('branding', storedLinkBranding(mergeLinkBranding(link.branding, input.branding)), storedLinkBranding(link.branding));

      // Active state follows the limit: raising it reopens a link closed by its limit.
      const limit = input.payment_limit !== undefined ? input.payment_limit : link.paymentLimit;
      if (limit !== null && limit < link.paidCount) {
        throw new ValidationError([{ field: 'payment_limit', code: 'limit_below_paid', message: `This link already has ${link.paidCount} payments; the limit cannot be lower.` }]);
      }
      const atLimit = limit !== null && link.paidCount >= limit;
      let active = link.active;
      let reason = link.inactiveReason;
      if (input.active === false) {
        active = false;
        reason = 'manual';
      } else if (input.active === true) {
        if (atLimit) throw new ValidationError([{ field: 'active', code: 'limit_reached', message: 'This link has reached its payment limit. Raise the limit to reactivate it.' }]);
        if (link.expiresAt && link.expiresAt <= clock.now()) throw new ValidationError([{ field: 'active', code: 'link_expired', message: 'This payment request has expired and cannot be reopened. Send a new one instead.' }]);
        active = true;
        reason = null;
      } else if (atLimit && link.active) {
        active = false;
        reason = 'limit_reached';
      } else if (!atLimit && reason === 'limit_reached') {
        active = true;
        reason = null;
      }
      if (active !== link.active || reason !== link.inactiveReason) {
        row.active = active;
        row.inactive_reason = reason;
        changed.push('active');
      }
      const tagsChanged = input.tags !== undefined && JSON.stringify([...input.tags].map((t) => t.trim().toLowerCase()).sort()) !== JSON.stringify(link.tags.map((t) => t.name.toLowerCase()).sort());
      if (tagsChanged) changed.push('tags');
      if (!changed.length) return link;
      try {
        await inTransaction(db, async (trx) => {
          if (Object.keys(row).length) await trx('links').where({ id: link.key }).update({ ...row, updated_at: clock.now() });
          if (tagsChanged) await setTags(trx, link, input.tags!);
          if (itemsChanged) await replaceItemRows(trx, link.key, itemRows!);
          await events.emit(trx, 'link.updated', { linkId: link.id, merchantId: merchant.id, changed }, merchant.key);
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw pathTaken();
        throw err;
      }
      return service.get(merchant, id);
    },

    /** A copy with a fresh path and no history (counters at zero); `within` runs in its creating transaction. */
    async duplicate(merchant: Merchant, id: string, opts: { within?: (trx: Trx, copy: { key: number; id: string }, original: Link) => Promise<void>; by?: CreatedBy } = {}): Promise<Link> {
      const link = await service.get(merchant, id);
      const input: Record<string, unknown> = {
        type: link.type,
        name: link.name,
        path: await freePath(db, merchant.key, link.path ?? slugify(link.name)),
        description: link.description,
        internal_notes: link.internalNotes,
        payment_limit: link.paymentLimit,
        tags: link.tags.map((t) => t.name),
        redirect_url: link.redirectUrl,
        redirect_target: link.redirectTarget,
        show_remaining: link.showRemaining,
        allow_coupons: link.allowCoupons,
        collect: link.collect ? JSON.stringify(link.collect) : null,
        branding: link.branding,
        active: true,
      };
      if (link.type === 'amount') Object.assign(input, link.customAmount ? { custom_amount: customAmountJson(link.customAmount), currency: link.currency } : { amount: link.amount, currency: link.currency });
      else if (link.type === 'items') input.items = link.items.map((i) => ({ product_id: i.product.id, quantity: i.quantity }));
      else input.product_id = link.productId;
      const within = opts.within;
      return service.create(merchant, input, { ...(within ? { within: (trx, copy) => within(trx, copy, link) } : {}), ...(opts.by ? { by: opts.by } : {}) });
    },

    /**
     * Closes links past their expiry (payment requests) as `expired`, each with `link.expired`.
     * Each link is closed by a conditional UPDATE in its own transaction, so two processes sweeping
     * at once announce every link once. Returns how many it closed (at most `limit`).
     */
    async expireDue(limit = 200): Promise<number> {
      const now = clock.now();
      const due = (await db('links')
        .where('active', true)
        .andWhere('expires_at', '<=', now)
        .whereNull('deleted_at')
        .orderBy('expires_at')
        .limit(limit)
        .select('id', 'public_id', 'merchant_id', 'customer_id', 'expires_at')) as any[];
      if (!due.length) return 0;
      const customerKeys = due.filter((r) => r.customer_id !== null && r.customer_id !== undefined).map((r) => Number(r.customer_id));
      const [merchantsByKey, customersByKey] = await Promise.all([deps.merchants.byKeys(due.map((r) => Number(r.merchant_id))), deps.customers.summariesByKeys(customerKeys)]);
      let closed = 0;
      for (const r of due) {
        await inTransaction(db, async (trx) => {
          const n = await trx('links').where({ id: r.id, active: true }).whereNull('deleted_at').update({ active: false, inactive_reason: 'expired', updated_at: now });
          if (!n) return;
          closed++;
          const customerId = r.customer_id === null || r.customer_id === undefined ? null : customersByKey.get(Number(r.customer_id))?.id ?? null;
          await events.emit(trx, 'link.expired', { merchantId: merchantsByKey.get(Number(r.merchant_id))!.id, linkId: r.public_id, customerId, expiredAt: toDate(r.expires_at).toISOString() }, r.merchant_id);
        });
      }
      return closed;
    },

    /** Deletes the link: its URL answers 404 and its path is free; its payments stay. */
    async remove(merchant: Merchant, id: string): Promise<void> {
      const link = await service.get(merchant, id);
      await inTransaction(db, async (trx) => {
        const now = clock.now();
        await trx('links').where({ id: link.key }).update({ deleted_at: now, deleted_path: link.path, path: null, active: false, inactive_reason: link.inactiveReason ?? 'manual', updated_at: now });
        await events.emit(trx, 'link.deleted', { linkId: link.id, merchantId: merchant.id, path: link.path }, merchant.key);
      });
    },

    /** JSON API list: cursor pagination, filters from API.md. */
    async list(merchant: Merchant, rawQuery: Record<string, unknown>): Promise<Page<Link>> {
      const page = parseBody(listQuerySchema, rawQuery);
      const filters = parseBody(linkSearchSchema, rawQuery);
      const q = whereMadeBy(base(db).where('l.merchant_id', merchant.key).whereNull('l.deleted_at'), ownScope(merchant.actor), madeByColumns);
      applyFilters(q, merchant.key, {
        q: filters.q,
        status: filters.status,
        tags: filters.tag,
        createdFrom: parseDateFilter(filters.created_gte, 'created_gte'),
        createdTo: parseDateFilter(filters.created_lte, 'created_lte'),
        kind: filters.kind,
        source: filters.source,
      });
      let afterKey: number | null = null;
      if (page.starting_after) {
        const anchor = await db('links').where({ merchant_id: merchant.key, public_id: page.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of your links.' }]);
        afterKey = anchor.id;
      }
      return pageByIdDesc(q, { limit: page.limit, afterKey, idColumn: 'l.id' }, fromRows);
    },

    /** Dashboard list: filters, sorting, numbered pages (indexes keep 10,000 links fast). */
    async search(merchant: Merchant, s: DashboardSearch): Promise<{ items: Link[]; total: number; page: number; pages: number; perPage: number }> {
      const perPage = Math.min(Math.max(s.perPage ?? 25, 1), 100);
      const q = whereMadeBy(db('links as l').where('l.merchant_id', merchant.key).whereNull('l.deleted_at'), ownScope(merchant.actor), madeByColumns);
      // A status belongs to one kind: a smart link's status lists smart links, a request's requests.
      const kind = s.status ? ((SMART_STATUSES as readonly string[]).includes(s.status) ? 'smart' : 'request') : s.kind;
      if (s.kind && kind !== s.kind) return { items: [], total: 0, page: 1, pages: 1, perPage };
      applyFilters(q, merchant.key, { ...s, kind });
      const [{ n }] = await q.clone().count({ n: '*' });
      const total = Number(n);
      const pages = Math.max(1, Math.ceil(total / perPage));
      const page = Math.min(Math.max(1, Math.floor(s.page ?? 1)), pages);
      const dir = s.dir === 'asc' ? 'asc' : 'desc';
      const order: Record<string, string> = { created: 'l.created_at', name: 'l.name', payments: 'l.payments_count' };
      const sorted = (b: Knex.QueryBuilder) =>
        (s.sort === 'price' ? b.orderByRaw(`coalesce(l.amount, (?)) ${dir}`, [products.priceOf('l.product_id')]) : b.orderBy(order[s.sort ?? 'created'] ?? 'l.created_at', dir)).orderBy('l.id', dir);
      // Deferred join: the page's ids come from the (merchant, deleted_at, created_at|name) index alone,
      // then only those rows are read, so a late page costs about what the first one does.
      const ids = q.clone().select('l.id').limit(perPage).offset((page - 1) * perPage);
      const rows = await sorted(base(db).join(sorted(ids).as('pg'), 'pg.id', 'l.id'));
      return { items: await fromRows(rows), total, page, pages, perPage };
    },

    /** The API keys (internal ids) that made any of the merchant's live links, from the source index alone. */
    async apiKeysUsed(merchantKey: number): Promise<number[]> {
      const rows = (await db('links').where({ merchant_id: merchantKey, source: 'api' }).whereNotNull('api_key_id').whereNull('deleted_at').distinct('api_key_id')) as { api_key_id: number }[];
      return rows.map((r) => Number(r.api_key_id));
    },

    /** Whether the merchant has any live link at all, of either kind (the Links page's first-run state). */
    async hasAny(merchantKey: number, only: OwnScope | null = null): Promise<boolean> {
      return Boolean(await whereMadeBy(db('links as l').where('l.merchant_id', merchantKey).whereNull('l.deleted_at'), only, madeByColumns).first('l.id'));
    },

    /** The payment request over each of these request links (the Links page links its rows there). */
    async requestRefs(linkKeys: number[]): Promise<Map<number, RequestRef>> {
      return linkKeys.length && deps.requests ? deps.requests.refsByLinkKeys(linkKeys) : new Map();
    },

    /** The API representation (shared/API.md). */
    json: (merchant: Pick<Merchant, 'handle'>, link: Link) => linkJson(link, urlFor(link, merchant), deps.baseUrl),
  };

  function parseDateFilter(value: string | undefined, field: string): Date | null {
    if (!value) return null;
    const d = new Date(/^\d{4}-\d\d-\d\d$/.test(value) ? `${value}T00:00:00Z` : value);
    if (Number.isNaN(d.getTime())) throw new ValidationError([{ field, code: 'invalid_date', message: `${field} must be a date such as 2025-06-30 or an ISO 8601 time.` }]);
    return d;
  }

  function applyFilters(q: Knex.QueryBuilder, merchantKey: number, s: DashboardSearch): void {
    // ESCAPE spelled out: SQLite's LIKE has no escape character by default (MySQL's is the backslash).
    if (s.q) q.andWhereRaw('l.name like ? escape ?', [containsPattern(s.q), '\\']);
    if (s.status === 'active') q.andWhere('l.active', true);
    if (s.status === 'inactive') q.andWhere('l.active', false);
    if (s.status === 'limit_reached') q.andWhere('l.inactive_reason', 'limit_reached');
    if (s.status && (REQUEST_STATUSES as readonly string[]).includes(s.status)) {
      if (!deps.requests) throw new Error('Filtering by a payment request status needs the requests feature.');
      q.whereIn('l.id', deps.requests.linkKeysWhere(merchantKey, { status: s.status as RequestStatus }));
    }
    if (s.apiKeyKey !== undefined) q.andWhere({ 'l.source': 'api', 'l.api_key_id': s.apiKeyKey });
    else if (s.source) q.andWhere('l.source', s.source);
    if (s.createdFrom) q.andWhere('l.created_at', '>=', s.createdFrom);
    if (s.createdTo) q.andWhere('l.created_at', '<=', s.createdTo);
    if (s.tags?.length) q.whereIn('l.id', tags.taggedWithAny(merchantKey, 'link', s.tags));
    if (s.kind) q.andWhere('l.kind', s.kind);
  }

  return service;
}

/** The API representation (shared/API.md); `url` is the link's own address (the service's urlFor). */
function linkJson(link: Link, url: string, baseUrl: string) {
  const unitPrice = link.type === 'amount' ? link.amount : link.productPrice;
  return {
    id: link.id,
    object: 'link',
    kind: link.kind,
    source: link.source,
    type: link.type,
    name: link.name,
    path: link.path,
    url,
    description: link.description,
    internal_notes: link.internalNotes,
    amount: link.type === 'items' ? null : link.type === 'amount' ? link.amount : unitPrice,
    currency: link.currency,
    product_id: link.productId,
    ...(link.type === 'items' ? { items: itemsJson(link.items) } : {}),
    custom_amount: customAmountJson(link.customAmount),
    payment_limit: link.paymentLimit,
    paid_count: link.paidCount,
    held_count: link.heldCount,
    remaining: remaining(link),
    active: link.active,
    inactive_reason: link.inactiveReason,
    redirect_url: link.redirectUrl,
    redirect_target: link.redirectTarget,
    show_remaining: link.showRemaining,
    allow_coupons: link.allowCoupons,
    collect: collectJson(link.collect),
    branding: linkBrandingJson(link.branding),
    expires_at: link.expiresAt?.toISOString() ?? null,
    tags: link.tags.map(tagRef),
    qr: { png: `${baseUrl}/api/v1/links/${link.id}/qr.png`, svg: `${baseUrl}/api/v1/links/${link.id}/qr.svg` },
    stats: {
      views: link.views,
      payments: link.payments,
      revenue: link.revenue,
      conversion_rate: conversionRate(link),
      average_payment: link.payments > 0 ? Math.round(link.revenue / link.payments) : null,
    },
    created_at: link.createdAt.toISOString(),
    updated_at: link.updatedAt.toISOString(),
  };
}

export type LinkService = ReturnType<typeof createLinkService>;
