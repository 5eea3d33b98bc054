import fs from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import knexFactory, { type Knex } from 'knex';
import type { DatabaseConfig } from '../config.ts';
import type { Logger } from './log.ts';
import { backgroundGivesWay, pace } from './pace.ts';

export type Db = Knex;
export type Trx = Knex.Transaction;
/** Repositories accept either the pool or a transaction, so services decide the boundary. */
export type Queryable = Knex | Knex.Transaction;

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

/** How many keys one `whereIn` of a batch lookup takes. */
export const KEYS_PER_QUERY = 500;

/**
 * Rows of `table` by id, `map`ped and keyed by id: one query per {@link KEYS_PER_QUERY} distinct keys,
 * in `q` (a caller's transaction when inside one). Only the table's owner calls it with its table.
 */
export async function rowsByKeys<T>(q: Queryable, table: string, keys: Iterable<number>, columns: string[] | '*', map: (row: any) => T): Promise<Map<number, T>> {
  const out = new Map<number, T>();
  const unique = [...new Set(keys)];
  for (let i = 0; i < unique.length; i += KEYS_PER_QUERY) {
    const rows = (await q(table).whereIn('id', unique.slice(i, i + KEYS_PER_QUERY)).select(columns === '*' ? '*' : ['id', ...columns])) as any[];
    for (const r of rows) out.set(Number(r.id), map(r));
  }
  return out;
}

export function isMysql(db: Queryable): boolean {
  return db.client.config.client === 'mysql2';
}

export interface DbOptions {
  pool?: { min: number; max: number };
  /** Where knex's own warnings go (connection errors…); without it knex writes to the console. */
  log?: Logger;
}

function knexLog(log: Logger | undefined): Knex.Config['log'] {
  if (!log) return undefined;
  return {
    warn: (m: unknown) => log.warn(String(m)),
    error: (m: unknown) => log.error(String(m)),
    deprecate: (m: unknown) => log.debug(`deprecated: ${String(m)}`),
    debug: (m: unknown) => log.debug(String(m)),
  };
}

export function knexConfig(database: DatabaseConfig, opts: DbOptions = {}): Knex.Config {
  const log = knexLog(opts.log);
  if (database.client === 'mysql') {
    return {
      log,
      client: 'mysql2',
      connection: { uri: database.url, timezone: 'Z', charset: 'utf8mb4', supportBigNumbers: true, bigNumberStrings: false, dateStrings: false } as Knex.MySql2ConnectionConfig,
      pool: opts.pool ?? { min: 0, max: 10 },
      migrations: { migrationSource: new TsMigrationSource(), tableName: 'knex_migrations' },
    };
  }
  return {
    client: 'better-sqlite3',
    log,
    connection: { filename: database.filename },
    useNullAsDefault: true,
    // One connection: SQLite has one writer anyway, and a query that escapes its transaction deadlocks loudly.
    pool: {
      min: 1,
      max: 1,
      afterCreate: (conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) => {
        try {
          cacheStatements(conn);
          conn.pragma('journal_mode = WAL');
          conn.pragma('synchronous = NORMAL');
          conn.pragma(`cache_size = -${SQLITE_CACHE_KIB}`);
          conn.pragma('foreign_keys = ON');
          conn.pragma('busy_timeout = 5000');
          done(null, conn);
        } catch (err) {
          done(err as Error, conn);
        }
      },
    },
    migrations: { migrationSource: new TsMigrationSource(), tableName: 'knex_migrations' },
  };
}

/**
 * SQLite's page cache (KiB; its default is 2 MiB). Public ids are random, so every insert into a big
 * table touches a random page of its id index: with the default cache a batch of 500 deliveries, events
 * or outbox records read most of those pages back from the OS one syscall at a time. Only pages in
 * use fill it: a small database uses little.
 */
const SQLITE_CACHE_KIB = 64 * 1024;

/** The parts of a better-sqlite3 Database this file touches. */
interface SqliteConnection {
  pragma(s: string): unknown;
  prepare(sql: string): { busy: boolean };
}

/** Prepared statements kept per connection (least recently used dropped first). */
const STATEMENT_CACHE_SIZE = 300;

/**
 * knex prepares every SQLite statement anew, each time it runs: a fifth of the CPU of a query-heavy
 * job, and a native object per query for the garbage collector to finalise. The connection keeps the
 * statements it prepared, by SQL text (knex binds values as parameters, so the text repeats), and
 * hands a cached one back unless it is busy (an iteration still open on it).
 */
function cacheStatements(conn: SqliteConnection): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new Map<string, { busy: boolean }>();
  conn.prepare = (sql: string) => {
    const hit = cache.get(sql);
    if (hit && !hit.busy) {
      cache.delete(sql); // re-inserted below: Map order is recency
      cache.set(sql, hit);
      return hit;
    }
    const statement = prepare(sql);
    if (!hit) {
      cache.set(sql, statement);
      if (cache.size > STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
    }
    return statement;
  };
}

export function createDb(database: DatabaseConfig, opts: DbOptions = {}): Db {
  if (database.client === 'sqlite' && database.filename !== ':memory:') {
    fs.mkdirSync(path.dirname(database.filename), { recursive: true });
  }
  const db = knexFactory(knexConfig(database, opts));
  paceConnections(db, database.client === 'sqlite');
  return db;
}

/**
 * better-sqlite3 answers synchronously, so on SQLite a run of queries (a job, a batch, the handling
 * of a webhook response) settles as one chain of microtasks that holds the event loop to the end.
 * Taking the connection (every query outside a transaction, every transaction's start) first waits
 * for the loop turn's slice to have time left (core/pace.ts), so such runs give way to timers, I/O
 * and requests between statements and transactions, never inside a transaction.
 */
function paceConnections(db: Db, sqlite: boolean): void {
  const client = db.client as { acquireConnection(): Promise<unknown> };
  const acquire = client.acquireConnection.bind(client);
  client.acquireConnection = async () => {
    // Background work (jobs) lets unanswered requests go first, on any database.
    await backgroundGivesWay();
    if (sqlite) await pace();
    return acquire();
  };
}

/**
 * Migrations are stored by name without extension so `knex_migrations` rows stay valid whether the
 * code runs as .ts (tsx) or is ever compiled to .js. Names sort by their timestamp prefix.
 */
export class TsMigrationSource implements Knex.MigrationSource<string> {
  constructor(private readonly dir = MIGRATIONS_DIR) {}
  async getMigrations(): Promise<string[]> {
    return fs
      .readdirSync(this.dir)
      .filter((f) => /^\d{14}_[a-z0-9_]+\.(ts|js)$/.test(f))
      .map((f) => f.replace(/\.(ts|js)$/, ''))
      .sort();
  }
  getMigrationName(name: string): string {
    return name;
  }
  async getMigration(name: string): Promise<Knex.Migration> {
    const file = fs.existsSync(path.join(this.dir, `${name}.ts`)) ? `${name}.ts` : `${name}.js`;
    return import(pathToFileURL(path.join(this.dir, file)).href);
  }
}

/**
 * Applies pending migrations. On MySQL several processes may start at once: a server-wide advisory
 * lock (GET_LOCK, held by one pinned connection) serialises them, so knex never sees two migrators
 * (its own lock fails fast with MigrationLocked, and two racing first starts can corrupt its lock table).
 */
export async function migrateLatest(db: Db): Promise<string[]> {
  const run = async () => ((await db.migrate.latest()) as [number, string[]])[1];
  if (!isMysql(db)) return run();
  return db.transaction(async (trx) => {
    const [[{ name }]] = (await trx.raw('SELECT DATABASE() AS name')) as [[{ name: string }]];
    const lock = `paylink:migrate:${createHash('sha256').update(String(name)).digest('hex').slice(0, 40)}`;
    const [[{ ok }]] = (await trx.raw('SELECT GET_LOCK(?, ?) AS ok', [lock, 120])) as [[{ ok: number | null }]];
    if (Number(ok) !== 1) throw new Error('Timed out after 120 s waiting for another Paylink process to finish migrating the database.');
    try {
      return await run();
    } finally {
      await trx.raw('SELECT RELEASE_LOCK(?)', [lock]);
    }
  });
}

/** Times are stored as DATETIME(3) on MySQL and epoch milliseconds on SQLite; read them back as Date. */
export function toDate(value: unknown): Date {
  if (value instanceof Date) return value;
  if (typeof value === 'number') return new Date(value);
  if (typeof value === 'string') return /^\d+$/.test(value) ? new Date(Number(value)) : new Date(value.includes('T') || value.endsWith('Z') ? value : value.replace(' ', 'T') + 'Z');
  throw new TypeError(`not a time: ${String(value)}`);
}

export function toDateOrNull(value: unknown): Date | null {
  return value === null || value === undefined ? null : toDate(value);
}

/** Runs fn in a transaction; on MySQL at READ COMMITTED so check-then-act and claims see committed rows. */
export async function inTransaction<T>(db: Db, fn: (trx: Trx) => Promise<T>): Promise<T> {
  if (isMysql(db)) {
    return db.transaction(fn, { isolationLevel: 'read committed' });
  }
  return db.transaction(fn);
}

/** True for a unique-constraint violation on either database. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; errno?: number };
  return e?.code === 'ER_DUP_ENTRY' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** `%text%` for `LIKE ? ESCAPE '\\'`, with the user's own %, _ and \\ taken literally. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
