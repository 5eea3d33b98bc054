import type { Db } from '../db.ts';
import { isMysql, isUniqueViolation, toDate } from '../db.ts';
import type { Clock } from '../clock.ts';
import { sortableId } from '../ids.ts';
import { insertRows, rowsFor } from '../bulk.ts';
import { NotFoundError } from '../errors.ts';
import type { PluginRecord, PluginStore } from '../../plugin-api.ts';

/** What insertMany writes, in this order. */
const STORE_COLUMNS = ['public_id', 'plugin_id', 'collection', 'merchant_id', 'data', 'created_at', 'updated_at'] as const;

interface Row {
  id: number;
  public_id: string;
  merchant_id: number | null;
  data: string;
  created_at: unknown;
  updated_at: unknown;
}

const toRecord = <T>(r: Row, merchantIds: Map<number, string>): PluginRecord<T> => ({
  id: r.public_id,
  merchantId: r.merchant_id === null || r.merchant_id === undefined ? null : (merchantIds.get(Number(r.merchant_id)) ?? null),
  data: JSON.parse(r.data) as T,
  createdAt: toDate(r.created_at),
  updatedAt: toDate(r.updated_at),
});

/**
 * Merchant ids ↔ keys, answered by the merchants feature (core names no feature's table): the
 * runtime passes them in.
 */
export interface MerchantResolver {
  /** A merchant's key by public id, or null. */
  keyOf(merchantId: string): Promise<number | null>;
  /** Public ids of these merchant keys (one query). */
  publicIdsOf(keys: number[]): Promise<Map<number, string>>;
}

/** The `plugin_records` table, scoped to one plugin id: plugins never see raw knex. */
export function createPluginStore(db: Db, clock: Clock, pluginId: string, merchants: MerchantResolver): PluginStore {
  const base = () => db('plugin_records as r').where('r.plugin_id', pluginId).select('r.id', 'r.public_id', 'r.merchant_id', 'r.data', 'r.created_at', 'r.updated_at');

  /** Rows to records, their merchants' public ids read in one lookup. */
  async function records<T>(rows: Row[]): Promise<PluginRecord<T>[]> {
    const keys = rows.map((r) => r.merchant_id).filter((k): k is number => k !== null && k !== undefined).map(Number);
    const ids = keys.length ? await merchants.publicIdsOf(keys) : new Map<number, string>();
    return rows.map((r) => toRecord<T>(r, ids));
  }

  // A merchant's key never changes: remembered, so a channel storing many messages asks once.
  const merchantKeys = new Map<string, number>();
  async function merchantKey(merchantId: string | null | undefined): Promise<number | null> {
    if (merchantId == null) return null;
    const known = merchantKeys.get(merchantId);
    if (known !== undefined) return known;
    const key = await merchants.keyOf(merchantId);
    if (key === null) throw new NotFoundError(`No merchant ${merchantId}`);
    if (merchantKeys.size > 10_000) merchantKeys.clear();
    merchantKeys.set(merchantId, key);
    return key;
  }

  // The same rule on SQLite and MariaDB, whose 64-character column would refuse a longer name.
  const checkCollection = (collection: unknown) => {
    if (typeof collection !== 'string' || collection.length < 1 || collection.length > 64) {
      throw new Error(`${pluginId}: a collection name is 1 to 64 characters; got ${JSON.stringify(collection)}`);
    }
  };

  return Object.freeze({
    async insert(collection, record) {
      checkCollection(collection);
      const now = clock.now();
      const id = sortableId('rec');
      await db('plugin_records').insert({
        public_id: id,
        plugin_id: pluginId,
        collection,
        merchant_id: await merchantKey(record.merchantId),
        data: JSON.stringify(record.data),
        created_at: now,
        updated_at: now,
      });
      return { id, merchantId: record.merchantId ?? null, data: record.data, createdAt: now, updatedAt: now };
    },
    async insertMany(collection, records) {
      checkCollection(collection);
      const now = clock.now();
      // Each merchant looked up once (a batch is usually one merchant's), not awaited record by record.
      const keys = new Map<string | null, number | null>();
      for (const record of records) {
        const id = record.merchantId ?? null;
        if (!keys.has(id)) keys.set(id, await merchantKey(id));
      }
      const rows: { public_id: string; plugin_id: string; collection: string; merchant_id: number | null; data: string; created_at: Date; updated_at: Date }[] = [];
      for (const record of records) {
        rows.push({ public_id: sortableId('rec'), plugin_id: pluginId, collection, merchant_id: keys.get(record.merchantId ?? null)!, data: JSON.stringify(record.data), created_at: now, updated_at: now });
      }
      // All in one transaction (every record is stored or none), in statements of about 256 KiB of
      // data (an outbox message is a few KB: 500 of them in one statement held the loop for tens of
      // ms on SQLite), other work running between them.
      const bytes = rows.reduce((n, r) => n + r.data.length, 0);
      const rowsPerStatement = rowsFor(bytes / Math.max(1, rows.length) + 100);
      if (rows.length) await db.transaction((trx) => insertRows(trx, 'plugin_records', STORE_COLUMNS, rows.map((r) => STORE_COLUMNS.map((c) => r[c])), { rowsPerStatement, yieldBetween: true }));
      return rows.map((r, i) => ({ id: r.public_id, merchantId: records[i].merchantId ?? null, data: records[i].data, createdAt: now, updatedAt: now }));
    },
    async list(collection, opts = {}) {
      checkCollection(collection);
      const limit = Number.isInteger(opts.limit) ? Math.min(Math.max(opts.limit!, 1), 500) : 50;
      const q = base().where('r.collection', collection).orderBy('r.id', 'desc').limit(limit);
      if (opts.merchantId !== undefined) {
        if (opts.merchantId === null) q.whereNull('r.merchant_id');
        else {
          const key = merchantKeys.get(opts.merchantId) ?? (await merchants.keyOf(opts.merchantId));
          if (key === null) return [];
          q.where('r.merchant_id', key);
        }
      }
      if (opts.beforeId) {
        const anchor = await db('plugin_records').where({ public_id: opts.beforeId, plugin_id: pluginId }).first('id');
        if (anchor) q.where('r.id', '<', anchor.id);
      }
      return records(await q);
    },
    async get(collection, id) {
      checkCollection(collection);
      if (typeof id !== 'string') return null;
      const row = (await base().where('r.collection', collection).andWhere('r.public_id', id).first()) as Row | undefined;
      return row ? (await records<any>([row]))[0] : null;
    },
    async insertOnce(collection, key, record) {
      checkCollection(collection);
      if (typeof key !== 'string' || key.length < 1 || key.length > 191) throw new Error(`${pluginId}: a record key is 1 to 191 characters`);
      const now = clock.now();
      const id = sortableId('rec');
      try {
        // The unique index (plugin_id, collection, unique_key) decides: two deliveries at once store one.
        await db('plugin_records').insert({ public_id: id, plugin_id: pluginId, collection, unique_key: key, merchant_id: await merchantKey(record.merchantId), data: JSON.stringify(record.data), created_at: now, updated_at: now });
      } catch (err) {
        if (isUniqueViolation(err)) return null;
        throw err;
      }
      return { id, merchantId: record.merchantId ?? null, data: record.data, createdAt: now, updatedAt: now };
    },
    async getByKey(collection, key) {
      checkCollection(collection);
      if (typeof key !== 'string' || key.length > 191) return null;
      const row = (await base().where('r.collection', collection).andWhere('r.unique_key', key).first()) as Row | undefined;
      return row ? (await records<any>([row]))[0] : null;
    },
    async deleteOlderThan(collection, before) {
      checkCollection(collection);
      if (!(before instanceof Date) || Number.isNaN(before.getTime())) throw new Error(`${pluginId}: deleteOlderThan needs a valid Date`);
      // In batches, so pruning a large collection never holds one long lock.
      let total = 0;
      for (;;) {
        const ids = (await db('plugin_records').where({ plugin_id: pluginId, collection }).andWhere('created_at', '<', before).orderBy('id').limit(500).pluck('id')) as number[];
        if (!ids.length) return total;
        total += await db('plugin_records').whereIn('id', ids).andWhere({ plugin_id: pluginId }).del();
      }
    },
    async update(collection, id, data) {
      checkCollection(collection);
      const n = await db('plugin_records').where({ plugin_id: pluginId, collection, public_id: id }).update({ data: JSON.stringify(data), updated_at: clock.now() });
      if (!n) throw new NotFoundError(`No record ${id}`);
    },
    async replaceIf(collection, id, expected, data) {
      checkCollection(collection);
      // The stored text is JSON.stringify of what was written; a record read back and stringified
      // again gives the same text (key order is kept), so equality of the text is equality of the data.
      // MariaDB compares text case- and trailing-space-insensitively: compare the bytes there.
      const n = await db('plugin_records')
        .where({ plugin_id: pluginId, collection, public_id: id })
        .andWhereRaw(isMysql(db) ? 'BINARY data = BINARY ?' : 'data = ?', [JSON.stringify(expected)])
        .update({ data: JSON.stringify(data), updated_at: clock.now() });
      return n === 1;
    },
  } satisfies PluginStore);
}
