/**
 * Multi-row statements for batches (a sweep's hundreds of deliveries, an outbox's records): the SQL
 * text is built once per shape (table, columns, row count) and kept, values go as bindings. knex's
 * query builder would compile a 500-row insert afresh each time (on SQLite as a compound SELECT), and
 * that compilation, not the database, was most of a batch's time. The same text valid on SQLite and
 * MySQL/MariaDB (backtick identifiers, `?` placeholders) — and on SQLite the connection's statement
 * cache (db.ts) then reuses the prepared statement too.
 */
import type { Knex } from 'knex';
import { isMysql, type Queryable } from './db.ts';
import { pace } from './pace.ts';

/** Rows per statement unless a caller says otherwise (kept well under SQLite's 32,766 bindings). */
export const ROWS_PER_STATEMENT = 500;

const texts = new Map<string, string>();
/** Shapes kept; beyond, the oldest are dropped (only a few shapes are in use at once). */
const MAX_TEXTS = 500;

function remember(key: string, build: () => string): string {
  let sql = texts.get(key);
  if (sql === undefined) {
    sql = build();
    if (texts.size >= MAX_TEXTS) texts.delete(texts.keys().next().value!);
    texts.set(key, sql);
  }
  return sql;
}

/**
 * Runs `sql` with `bindings` (one value per `?`, none a knex Raw) in `q`, as `q.raw(sql, bindings)`
 * would — the same events, transaction and connection — without knex's pass over the text: for a
 * raw query knex rebuilds the SQL by replacing each `?` through a callback (to expand nested raws),
 * and for a 500-row, 6,500-placeholder statement that pass cost a sixth of a reminder sweep's time,
 * more than several of its statements took in SQLite. Undefined values are refused as knex does.
 */
export function runStatement(q: Queryable, sql: string, bindings: readonly unknown[]): Knex.Raw {
  for (let i = 0; i < bindings.length; i++) {
    if (bindings[i] === undefined) throw new Error(`Undefined binding at position ${i} when running: ${sql.slice(0, 200)}`);
  }
  const raw = q.raw(sql);
  const compile = raw.toSQL.bind(raw);
  // Without bindings knex leaves the text as it is; the values are then handed over whole.
  raw.toSQL = () => Object.assign(compile(), { bindings: bindings as Knex.Value[] });
  return raw;
}

const name = (id: string) => `\`${id.replace(/`/g, '``')}\``;
const tuple = (n: number) => `(${Array(n).fill('?').join(', ')})`;

export interface InsertRowsOptions {
  /** A unique column: a row whose value exists already is skipped, not an error (knex's onConflict(col).ignore()). */
  ignoreDuplicatesOf?: string;
  rowsPerStatement?: number;
  /**
   * Let other work run between statements (core/pace.ts): on SQLite each statement holds the event
   * loop while it runs, so a batch of large rows written in one go would hold it for all of them.
   */
  yieldBetween?: boolean;
}

/** Statement sizes rowsFor chooses from: a few shapes, so their SQL texts and prepared statements are reused. */
const ROW_STEPS = [16, 32, 64, 128, 256, ROWS_PER_STATEMENT];

/**
 * Rows per statement for rows of about `bytesPerRow` bytes: as many as keep one statement near
 * `bytesPerStatement` (default 256 KiB, a couple of ms on SQLite), at least 16, at most 500.
 */
export function rowsFor(bytesPerRow: number, bytesPerStatement = 256 * 1024): number {
  const fit = Math.floor(bytesPerStatement / Math.max(1, bytesPerRow));
  let rows = ROW_STEPS[0];
  for (const step of ROW_STEPS) if (step <= fit) rows = step;
  return rows;
}

/**
 * `insert into table (columns) values (?, …), (?, …)` for `rows` (values in `columns` order), in
 * statements of at most `rowsPerStatement` rows, in `q` (pass the caller's transaction).
 */
export async function insertRows(q: Queryable, table: string, columns: readonly string[], rows: readonly (readonly unknown[])[], opts: InsertRowsOptions = {}): Promise<void> {
  const per = opts.rowsPerStatement ?? ROWS_PER_STATEMENT;
  const mysql = isMysql(q);
  const ignore = opts.ignoreDuplicatesOf;
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    const sql = remember(`i|${mysql}|${table}|${columns.join(',')}|${ignore ?? ''}|${chunk.length}`, () => {
      const head = `insert${ignore && mysql ? ' ignore' : ''} into ${name(table)} (${columns.map(name).join(', ')}) values `;
      const row = tuple(columns.length);
      return `${head}${Array(chunk.length).fill(row).join(', ')}${ignore && !mysql ? ` on conflict (${name(ignore)}) do nothing` : ''}`;
    });
    const bindings: unknown[] = [];
    for (const r of chunk) {
      if (r.length !== columns.length) throw new Error(`insertRows(${table}): a row has ${r.length} values for ${columns.length} columns`);
      for (const v of r) bindings.push(v);
    }
    if (opts.yieldBetween && i > 0) await pace();
    await runStatement(q, sql, bindings);
  }
}

export interface UpdateByKeysSpec {
  table: string;
  keys: readonly number[];
  /** Columns set to a value per row (same order as `keys`). */
  perRow?: Record<string, readonly unknown[]>;
  /** Columns set to one value for every row; a Knex.Raw is written as is (e.g. `sent_count + 1`). */
  same?: Record<string, unknown>;
  /**
   * Only rows that still match (e.g. `{ status: 'sending' }`: rows this worker holds). A check on the
   * rows found by key, never a way to find them: on SQLite it is written so no index serves it (`+col`),
   * or a planner without statistics may walk a large index range of that value instead of the keys.
   */
  where?: Record<string, string | number>;
}

/**
 * Many rows' updates in one statement, in `q`; `keys` are the `id`s. On SQLite the per-row values come
 * as a `VALUES` list joined by key (`with v(…) as (values …) update table set col = v.col … from v
 * where table.id = v.k`): each row is found by its key once. MySQL/MariaDB take `set col = CASE id
 * WHEN ? THEN ? … END … where id in (…)`, which tests the keys one by one for each row: on SQLite that
 * cost 2.7 ms more per 500-row statement than the update itself (4.7 → 2.0 ms), on MariaDB next to
 * nothing beside InnoDB's row updates (a join on a derived table: 8.9 → 8.2 ms). The SQL text is kept
 * per shape, like insertRows'.
 */
export async function updateByKeys(q: Queryable, spec: UpdateByKeysSpec): Promise<void> {
  const { table, keys } = spec;
  if (!keys.length) return;
  const perRow = Object.entries(spec.perRow ?? {});
  const same = Object.entries(spec.same ?? {});
  const where = Object.entries(spec.where ?? {});
  const raws = same.filter(([, v]) => isRaw(v)).map(([c, v]) => `${c}=${(v as Knex.Raw).toSQL().sql}`);
  const mysql = isMysql(q);
  const joined = !mysql && perRow.length > 0;
  const sql = remember(`u|${mysql}|${table}|${perRow.map(([c]) => c).join(',')}|${same.map(([c]) => c).join(',')}|${raws.join(',')}|${where.map(([c]) => c).join(',')}|${keys.length}`, () => {
    const sets = same.map(([c, v]) => `${name(c)} = ${isRaw(v) ? (v as Knex.Raw).toSQL().sql : '?'}`);
    // SQLite's unary + changes no value and keeps an index from serving the term.
    const conditions = where.map(([c]) => ` and ${mysql ? '' : `+${name(table)}.`}${name(c)} = ?`).join('');
    if (joined) {
      // Names no table has, so a raw `same` expression's columns are the table's own.
      const columns = ['_pl_k', ...perRow.map((_, i) => `_pl_v${i}`)];
      const values = Array(keys.length).fill(tuple(columns.length)).join(', ');
      const fromV = perRow.map(([c], i) => `${name(c)} = v.${columns[i + 1]}`);
      return `with v(${columns.join(', ')}) as (values ${values}) update ${name(table)} set ${[...fromV, ...sets].join(', ')} from v where ${name(table)}.id = v._pl_k${conditions}`;
    }
    const cases = perRow.map(([c]) => `${name(c)} = CASE id ${Array(keys.length).fill('WHEN ? THEN ?').join(' ')} END`);
    return `update ${name(table)} set ${[...cases, ...sets].join(', ')} where id in ${tuple(keys.length)}${conditions}`;
  });
  const bindings: unknown[] = [];
  if (joined) {
    for (let i = 0; i < keys.length; i++) {
      bindings.push(keys[i]);
      for (const [, values] of perRow) bindings.push(values[i]);
    }
  } else {
    for (const [, values] of perRow) {
      for (let i = 0; i < keys.length; i++) bindings.push(keys[i], values[i]);
    }
  }
  for (const [, v] of same) {
    if (isRaw(v)) bindings.push(...((v as Knex.Raw).toSQL().bindings as unknown[]));
    else bindings.push(v);
  }
  if (!joined) bindings.push(...keys);
  for (const [, v] of where) bindings.push(v);
  await runStatement(q, sql, bindings);
}

function isRaw(v: unknown): boolean {
  return typeof v === 'object' && v !== null && typeof (v as { toSQL?: unknown }).toSQL === 'function' && !(v instanceof Date);
}
