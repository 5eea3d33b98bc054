/**
 * Claiming rows of a work table (deliveries, …) for one worker: on MySQL/MariaDB one index-ordered
 * SELECT … FOR UPDATE SKIP LOCKED per scan at READ COMMITTED, then an UPDATE of exactly those rows;
 * on SQLite one conditional UPDATE whose subquery picks the rows (atomic under SQLite's single
 * writer). Two workers never claim the same row.
 */
import type { Knex } from 'knex';
import { type Db, isMysql } from './db.ts';

export interface ClaimSpec {
  table: string;
  /** Each scan selects due rows; on MySQL they run in order until `limit` rows are found. */
  scans: ((b: Knex.QueryBuilder) => void)[];
  orderBy: string;
  limit: number;
  /** Columns set on the claimed rows (e.g. a status and a lease). */
  set: Record<string, unknown>;
}

export async function claimRows(db: Db, spec: ClaimSpec): Promise<number[]> {
  const { table, scans, orderBy, limit, set } = spec;
  if (limit < 1) return [];
  if (isMysql(db)) {
    return db.transaction(
      async (trx) => {
        const found: number[] = [];
        for (const scan of scans) {
          if (found.length >= limit) break;
          const rows = (await trx(table).select('id').where(scan).orderBy(orderBy).limit(limit - found.length).forUpdate().skipLocked()) as { id: number | string }[];
          found.push(...rows.map((r) => Number(r.id)));
        }
        if (found.length) await trx(table).whereIn('id', found).update(set);
        return found;
      },
      { isolationLevel: 'read committed' },
    );
  }
  // One index-ordered subquery per scan (an OR of them would scan and sort the whole table), joined
  // with UNION ALL inside the single UPDATE.
  const picks = scans.map((scan) => db.select('id').from(db(table).select('id').where(scan).orderBy(orderBy).limit(limit).as('s')));
  const union = picks.length === 1 ? picks[0] : picks[0].unionAll(picks.slice(1));
  const rows = (await db(table)
    .whereIn('id', db.select('id').from(union.as('u')).limit(limit))
    .update(set)
    .returning('id')) as { id: number | string }[];
  return rows.map((r) => Number(r.id));
}
