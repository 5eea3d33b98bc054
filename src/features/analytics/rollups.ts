/**
 * Hourly per-link totals (views, payments, revenue) that charts read instead of raw rows. Written in
 * the same transaction as the change they count, so they always agree with the link's counters.
 */
import type { Queryable } from '../../core/db.ts';

export const HOUR_MS = 3_600_000;

export const hourOf = (at: Date | number): number => Math.floor((typeof at === 'number' ? at : at.getTime()) / HOUR_MS);

export interface StatsDelta {
  views?: number;
  payments?: number;
  revenue?: number;
}

/** Adds to one link's bucket for one hour (an upsert: the first addition creates the row). */
export async function addHourlyStats(q: Queryable, linkKey: number, hour: number, d: StatsDelta): Promise<void> {
  const views = d.views ?? 0;
  const payments = d.payments ?? 0;
  const revenue = d.revenue ?? 0;
  // Unqualified columns in the conflict clause mean the stored row on both SQLite and MySQL.
  await q('link_stats_hourly')
    .insert({ link_id: linkKey, hour, views, payments, revenue })
    .onConflict(['link_id', 'hour'])
    .merge({ views: q.raw('views + ?', [views]), payments: q.raw('payments + ?', [payments]), revenue: q.raw('revenue + ?', [revenue]) });
}

/** A captured payment, counted in its link's hour (called by checkout inside the capture transaction). */
export function countPayment(q: Queryable, linkKey: number, paidAt: Date, amount: number): Promise<void> {
  return addHourlyStats(q, linkKey, hourOf(paidAt), { payments: 1, revenue: amount });
}

/** A succeeded refund, taken off its link's revenue in the hour it happened (inside the refund's transaction). */
export function countRefund(q: Queryable, linkKey: number, at: Date, amount: number): Promise<void> {
  return addHourlyStats(q, linkKey, hourOf(at), { revenue: -amount });
}
