// Cursor pagination shared by the JSON API and dashboard lists: newest first by internal id,
// `starting_after=<public id>`, one extra row fetched to know whether there is more.
import type { Knex } from 'knex';
import { z } from 'zod';

export const listQuerySchema = z.object({
  limit: z.coerce
    .number({ error: 'limit must be a whole number from 1 to 100.' })
    .int('limit must be a whole number from 1 to 100.')
    .min(1, 'limit must be a whole number from 1 to 100.')
    .max(100, 'limit must be a whole number from 1 to 100.')
    .default(20),
  starting_after: z.string().max(64).optional(),
});

export interface Page<T> {
  data: T[];
  has_more: boolean;
}

/**
 * Runs `query` (already scoped and filtered; rows must carry `id`) newest first, after the row with
 * internal id `afterKey` when given.
 */
export async function pageByIdDesc<R extends { id: number }, T>(
  query: Knex.QueryBuilder,
  opts: { limit: number; afterKey?: number | null; idColumn?: string },
  map: (rows: R[]) => T[] | Promise<T[]>,
): Promise<Page<T>> {
  const col = opts.idColumn ?? 'id';
  if (opts.afterKey) query.where(col, '<', opts.afterKey);
  const rows = (await query.orderBy(col, 'desc').limit(opts.limit + 1)) as R[];
  const has_more = rows.length > opts.limit;
  return { data: await map(rows.slice(0, opts.limit)), has_more };
}
