// Colour-coded tags for links and customers (kind), unique by name per merchant and kind.
import { z } from 'zod';
import type { Db, Queryable, Trx } from '../../core/db.ts';
import { inTransaction, isUniqueViolation, toDate } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { publicId } from '../../core/ids.ts';
import { AppError, ConflictError, NotFoundError, ValidationError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import { colorSchema } from '../merchants/index.ts';

export type TagKind = 'link' | 'customer';

/** The join tables that attach tags to links and to customers. */
type TaggedTable = { table: 'link_tags'; column: 'link_id' } | { table: 'customer_tags'; column: 'customer_id' };

export interface Tag {
  key: number;
  id: string;
  kind: TagKind;
  name: string;
  color: string;
  createdAt: Date;
  updatedAt: Date;
}

/** Colours given to tags created by name (from a link form or the API), in turn. */
export const TAG_PALETTE = ['#f59e0b', '#10b981', '#3b82f6', '#ef4444', '#8b5cf6', '#ec4899', '#14b8a6', '#f97316', '#6366f1', '#84cc16'];

export const tagNameSchema = z
  .string({ error: 'Enter a tag name.' })
  .trim()
  .min(1, 'Enter a tag name.')
  .max(60, 'Keep tag names under 60 characters.')
  .refine((s) => !/[\u0000-\u001f\u007f\u2028\u2029]/.test(s), 'A tag name cannot contain line breaks or control characters.');

export const tagCreateSchema = z.object({
  name: tagNameSchema,
  color: colorSchema.optional(),
  kind: z.enum(['link', 'customer'], { error: 'kind must be "link" or "customer".' }).default('link'),
});

export const tagUpdateSchema = z.object({ name: tagNameSchema.optional(), color: colorSchema.optional(), kind: z.string().optional() });

export const tagSearchSchema = z.object({ kind: z.enum(['link', 'customer'], { error: 'kind must be "link" or "customer".' }).optional() });

const fromRow = (r: any): Tag => ({
  key: r.id,
  id: r.public_id,
  kind: r.kind,
  name: r.name,
  color: r.color,
  createdAt: toDate(r.created_at),
  updatedAt: toDate(r.updated_at),
});

export function tagJson(t: Tag) {
  return { id: t.id, object: 'tag', name: t.name, color: t.color, kind: t.kind, created_at: t.createdAt.toISOString(), updated_at: t.updatedAt.toISOString() };
}

/** The short form embedded in links and customers. */
export function tagRef(t: Tag) {
  return { id: t.id, name: t.name, color: t.color };
}

const nameTaken = (kind: string) => new ConflictError('tag_name_taken', `A ${kind} tag with this name already exists.`, [{ field: 'name', code: 'tag_name_taken', message: 'A tag with this name already exists.' }]);

export function createTagService({ db, clock }: { db: Db; clock: Clock }) {
  async function tagsOf(on: TaggedTable, keys: number[]): Promise<Map<number, Tag[]>> {
    const out = new Map<number, Tag[]>();
    if (!keys.length) return out;
    const rows = await db(`${on.table} as x`).join('tags as t', 't.id', 'x.tag_id').whereIn(`x.${on.column}`, keys).orderBy('t.name').select(`x.${on.column} as owner`, 't.*');
    for (const r of rows) {
      const list = out.get(r.owner) ?? [];
      list.push(fromRow(r));
      out.set(r.owner, list);
    }
    return out;
  }

  const nextColor = async (q: Queryable, merchantKey: number) => {
    const [{ n }] = await q('tags').where({ merchant_id: merchantKey }).count({ n: '*' });
    return TAG_PALETTE[Number(n) % TAG_PALETTE.length];
  };

  /**
   * Names are unique per merchant and kind regardless of case. MySQL's collation enforces that in the
   * unique index; SQLite's index is case-sensitive, so check first (ensureNamed matches the same way).
   */
  const nameInUse = async (merchantKey: number, kind: string, name: string, exceptKey?: number) => {
    const rows = (await db('tags').where({ merchant_id: merchantKey, kind }).whereRaw('lower(name) = lower(?)', [name]).select('id', 'name')) as { id: number; name: string }[];
    return rows.some((r) => r.id !== exceptKey && r.name.toLowerCase() === name.toLowerCase());
  };

  return {
    async list(merchantKey: number, kind?: TagKind): Promise<Tag[]> {
      const q = db('tags').where({ merchant_id: merchantKey }).orderBy('name');
      if (kind) q.andWhere({ kind });
      return (await q).map(fromRow);
    },

    /** JSON API list: newest first, cursor pagination, optional `kind` filter. */
    async page(merchantKey: number, rawQuery: unknown = {}): Promise<Page<Tag>> {
      const page = parseBody(listQuerySchema, rawQuery);
      const f = parseBody(tagSearchSchema, rawQuery);
      const q = db('tags').where({ merchant_id: merchantKey }).select('*');
      if (f.kind) q.andWhere({ kind: f.kind });
      let afterKey: number | null = null;
      if (page.starting_after) {
        const anchor = await db('tags').where({ merchant_id: merchantKey, public_id: page.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of your tags.' }]);
        afterKey = anchor.id;
      }
      return pageByIdDesc(q, { limit: page.limit, afterKey }, (rows) => rows.map(fromRow));
    },

    async get(merchantKey: number, id: string): Promise<Tag> {
      const r = await db('tags').where({ merchant_id: merchantKey, public_id: id }).first();
      if (!r) throw new NotFoundError('No such tag.');
      return fromRow(r);
    },

    async create(merchantKey: number, raw: unknown): Promise<Tag> {
      const input = parseBody(tagCreateSchema, raw);
      const now = clock.now();
      const id = publicId('tag');
      if (await nameInUse(merchantKey, input.kind, input.name)) throw nameTaken(input.kind);
      try {
        await db('tags').insert({ public_id: id, merchant_id: merchantKey, kind: input.kind, name: input.name, color: input.color ?? (await nextColor(db, merchantKey)), created_at: now, updated_at: now });
      } catch (err) {
        if (isUniqueViolation(err)) throw nameTaken(input.kind);
        throw err;
      }
      return this.get(merchantKey, id);
    },

    async update(merchantKey: number, id: string, raw: unknown): Promise<Tag> {
      const tag = await this.get(merchantKey, id);
      const input = parseBody(tagUpdateSchema, raw);
      if (input.kind !== undefined && input.kind !== tag.kind) {
        throw new AppError('immutable_field', 422, 'The tag kind cannot change. Create a tag of the other kind instead.', {
          errors: [{ field: 'kind', code: 'immutable_field', message: 'The tag kind cannot change after creation.' }],
        });
      }
      const row: Record<string, unknown> = {};
      if (input.name !== undefined && input.name !== tag.name && (await nameInUse(merchantKey, tag.kind, input.name, tag.key))) throw nameTaken(tag.kind);
      if (input.name !== undefined) row.name = input.name;
      if (input.color !== undefined) row.color = input.color;
      if (!Object.keys(row).length) return tag;
      try {
        await db('tags').where({ id: tag.key }).update({ ...row, updated_at: clock.now() });
      } catch (err) {
        if (isUniqueViolation(err)) throw nameTaken(tag.kind);
        throw err;
      }
      return this.get(merchantKey, id);
    },

    /** Deletes the tag; links and customers keep everything else. */
    async remove(merchantKey: number, id: string): Promise<void> {
      const tag = await this.get(merchantKey, id);
      await inTransaction(db, async (trx) => {
        await trx('link_tags').where({ tag_id: tag.key }).del();
        await trx('customer_tags').where({ tag_id: tag.key }).del();
        await trx('tags').where({ id: tag.key }).del();
      });
    },

    /**
     * Resolves tag names (creating unknown ones with the next palette colour) in the caller's
     * transaction. Names compare case-insensitively.
     */
    async ensureNamed(trx: Queryable, merchantKey: number, names: string[], kind: TagKind): Promise<number[]> {
      const wanted = new Map<string, string>();
      for (const raw of names) {
        const parsed = tagNameSchema.safeParse(raw);
        if (!parsed.success) throw new ValidationError([{ field: 'tags', code: 'invalid_tag', message: parsed.error.issues[0].message }]);
        wanted.set(parsed.data.toLowerCase(), parsed.data);
      }
      if (!wanted.size) return [];
      const existing = (await trx('tags').where({ merchant_id: merchantKey, kind }).select('id', 'name')) as { id: number; name: string }[];
      const byName = new Map(existing.map((t) => [t.name.toLowerCase(), t.id]));
      const ids: number[] = [];
      // In a fixed order, so two transactions creating the same new tags cannot deadlock each other.
      for (const [lower, name] of [...wanted].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        let key = byName.get(lower);
        if (!key) {
          const now = clock.now();
          // A concurrent request may create the same tag first: ignore the conflict and read it back
          // (on MySQL at READ COMMITTED the other transaction's row is visible once it commits).
          await trx('tags')
            .insert({ public_id: publicId('tag'), merchant_id: merchantKey, kind, name, color: await nextColor(trx, merchantKey), created_at: now, updated_at: now })
            .onConflict(['merchant_id', 'kind', 'name'])
            .ignore();
          const row = (await trx('tags').where({ merchant_id: merchantKey, kind, name }).first('id')) as { id: number } | undefined;
          if (!row) throw new Error(`tag "${name}" vanished while being created`);
          key = Number(row.id);
        }
        ids.push(key);
      }
      return ids;
    },

    /** Resolves tag public ids of this merchant and kind; unknown ids → 422 on `field`. */
    async keysForIds(trx: Queryable, merchantKey: number, ids: string[], kind: TagKind, field = 'tags'): Promise<number[]> {
      if (!ids.length) return [];
      const rows = (await trx('tags').where({ merchant_id: merchantKey, kind }).whereIn('public_id', ids).select('id', 'public_id')) as { id: number; public_id: string }[];
      const missing = ids.filter((id) => !rows.some((r) => r.public_id === id));
      if (missing.length) throw new ValidationError([{ field, code: 'unknown_tag', message: `No ${kind} tag ${missing[0]}.` }]);
      return rows.map((r) => r.id);
    },

    /** Tags of many links at once (one query), for lists. */
    forLinks: (linkKeys: number[]) => tagsOf({ table: 'link_tags', column: 'link_id' }, linkKeys),

    /** Tags of many customers at once (one query). */
    forCustomers: (customerKeys: number[]) => tagsOf({ table: 'customer_tags', column: 'customer_id' }, customerKeys),

    /** Replaces a link's tags with these names (created as needed), in the caller's transaction. */
    async setLinkTags(trx: Trx, merchantKey: number, linkKey: number, names: string[]): Promise<void> {
      const keys = await this.ensureNamed(trx, merchantKey, names, 'link');
      await trx('link_tags').where({ link_id: linkKey }).del();
      if (keys.length) await trx('link_tags').insert(keys.map((tag_id) => ({ link_id: linkKey, tag_id })));
    },

    /** Replaces a customer's tags with these names (created as needed), in the caller's transaction. */
    async setCustomerTags(trx: Trx, merchantKey: number, customerKey: number, names: string[]): Promise<void> {
      const keys = await this.ensureNamed(trx, merchantKey, names, 'customer');
      await trx('customer_tags').where({ customer_id: customerKey }).del();
      if (keys.length) await trx('customer_tags').insert(keys.map((tag_id) => ({ customer_id: customerKey, tag_id })));
    },

    /** Tags many new customers by name (the CSV import), in the caller's transaction: one insert per 500. */
    async tagCustomers(trx: Trx, merchantKey: number, items: { customerKey: number; names: string[] }[]): Promise<void> {
      const names = items.flatMap((it) => it.names);
      if (!names.length) return;
      await this.ensureNamed(trx, merchantKey, names, 'customer');
      const tagKey = new Map(((await trx('tags').where({ merchant_id: merchantKey, kind: 'customer' }).select('id', 'name')) as { id: number; name: string }[]).map((t) => [t.name.toLowerCase(), Number(t.id)]));
      const rows = items.flatMap((it) => [...new Set(it.names.map((n) => tagKey.get(n.trim().toLowerCase())!))].map((tag_id) => ({ customer_id: it.customerKey, tag_id })));
      for (let i = 0; i < rows.length; i += 500) await trx('customer_tags').insert(rows.slice(i, i + 500));
    },

    /** Gives a customer a tag; false when it already had it. */
    async addCustomerTag(trx: Trx, customerKey: number, tagKey: number): Promise<boolean> {
      if (await trx('customer_tags').where({ customer_id: customerKey, tag_id: tagKey }).first()) return false;
      await trx('customer_tags').insert({ customer_id: customerKey, tag_id: tagKey }).onConflict(['customer_id', 'tag_id']).ignore();
      return true;
    },

    /** Takes a tag off a customer; false when it did not have it. */
    async removeCustomerTag(trx: Trx, customerKey: number, tagKey: number): Promise<boolean> {
      return (await trx('customer_tags').where({ customer_id: customerKey, tag_id: tagKey }).del()) > 0;
    },

    /** A subquery of the keys of the customers carrying this tag, for `whereIn(<id column>, …)`. */
    customersWithTag: (tagKey: number) => db('customer_tags').where({ tag_id: tagKey }).select('customer_id'),

    /**
     * A subquery of the keys of the links (or customers, by `kind`) carrying any of the named tags
     * (case-insensitive), for `whereIn(<id column>, …)` filters.
     */
    taggedWithAny: (merchantKey: number, kind: TagKind, names: string[]) =>
      taggedWithAny(db, merchantKey, kind === 'link' ? { table: 'link_tags', column: 'link_id' } : { table: 'customer_tags', column: 'customer_id' }, names),
  };
}

export type TagService = ReturnType<typeof createTagService>;

/**
 * A subquery of the ids of links or customers carrying any of the named tags (case-insensitive),
 * for `whereIn(<id column>, …)` filters.
 */
function taggedWithAny(db: Queryable, merchantKey: number, on: TaggedTable, names: string[]) {
  return db(`${on.table} as x`)
    .join('tags as t', 't.id', 'x.tag_id')
    .where('t.merchant_id', merchantKey)
    .whereIn(db.raw('lower(t.name)') as any, names.map((t) => t.toLowerCase()))
    .select(`x.${on.column}`);
}
