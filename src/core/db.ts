import fs from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import knexFactory, { type Knex } from 'knex';
import type { DatabaseConfig } from '../config.ts';
import type { Logger } from './log.ts';
import { backgroundGivesWay, pace } from './pace.ts';
import { lightenTransactions } from './knex-transactor.ts';

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
  /** MySQL/MariaDB deadlines (config: DB_ACQUIRE_TIMEOUT_MS, DB_STALL_TIMEOUT_MS, DB_QUERY_TIMEOUT_MS). */
  timeouts?: DbTimeouts;
}

/**
 * How long Paylink waits for MySQL/MariaDB before it answers 503 instead (SQLite answers in-process).
 * A server that stops answering (paused, partitioned, swapping) would otherwise hold every request
 * until the client gives up: the pool has no acquire deadline and a statement none at all.
 */
export interface DbTimeouts {
  /** Waiting for a pooled connection (pool busy, or a new connection that does not open). */
  acquireMs: number;
  /**
   * A statement that has waited this long makes Paylink ask the server on a fresh connection (SELECT 1,
   * same deadline). No answer: the server is unresponsive — every waiting statement fails now (503)
   * and new ones fail at once until a probe (every half second) answers. An answer: the statement is
   * only slow and keeps running. So a dead server costs a request at most about twice this.
   */
  stallMs: number;
  /** The most one statement may run, server answering or not (migrations excepted); 0 = no limit. */
  statementMs: number;
}

export const DEFAULT_DB_TIMEOUTS: Readonly<DbTimeouts> = Object.freeze({ acquireMs: 1_500, stallMs: 750, statementMs: 30_000 });

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
      connection: {
        uri: database.url, timezone: 'Z', charset: 'utf8mb4', supportBigNumbers: true, bigNumberStrings: false, dateStrings: false,
        // A new connection that does not open is given up (the caller stopped waiting at acquireMs).
        connectTimeout: Math.max(2_000, (opts.timeouts ?? DEFAULT_DB_TIMEOUTS).acquireMs),
      } as Knex.MySql2ConnectionConfig,
      acquireConnectionTimeout: (opts.timeouts ?? DEFAULT_DB_TIMEOUTS).acquireMs,
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
  lightenTransactions();
  if (database.client === 'sqlite' && database.filename !== ':memory:') {
    fs.mkdirSync(path.dirname(database.filename), { recursive: true });
  }
  const db = knexFactory(knexConfig(database, opts));
  if (database.client === 'sqlite') keepFirstError(db);
  else guardStatements(db, opts.timeouts ?? DEFAULT_DB_TIMEOUTS, opts.log);
  // After the guards (which swap the client's prototype): it wraps the guarded acquire.
  paceConnections(db, database.client === 'sqlite');
  return db;
}

/** The database did not answer in time (or is known not to answer): an outage, answered 503. */
export class DatabaseTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseTimeoutError';
  }
}

/** The parts of a mysql2 connection the guard touches. */
interface MysqlConnection {
  query(sql: string, cb: (err: Error | null) => void): unknown;
  destroy(): void;
  stream?: { destroy(): void };
  __knex__disposed?: unknown;
}

interface KnexClientInternals {
  _query(connection: MysqlConnection, obj: unknown): Promise<unknown>;
  acquireConnection(): Promise<unknown>;
  acquireRawConnection(): Promise<MysqlConnection>;
  destroy(callback?: unknown): Promise<void>;
}

/** Dbs migrating now: exempt from the statement limit and the stall probe. */
const unlimited = new WeakSet<object>();

/**
 * Deadlines for MySQL/MariaDB statements (see DbTimeouts): each statement waits at most
 * `statementMs`; one that has waited `stallMs` triggers a probe of the server, and an unanswered
 * probe fails every waiting statement at once and refuses new ones until the server answers. A
 * failed statement's connection is dropped (its answer may still come), so the pool never hands out
 * a connection with a statement in flight; a transaction on it rolls back on the server.
 */
function guardStatements(db: Db, t: DbTimeouts, log: Logger | undefined): void {
  const client = db.client as unknown as KnexClientInternals;
  const waiting = new Set<{ since: number; fail(err: Error): void }>();
  let down: DatabaseTimeoutError | null = null;
  let probing = false;
  /** When a probe last found the server answering: a slow statement is probed once per stallMs, not every tick. */
  let answeredAt = 0;
  let watcher: NodeJS.Timeout | null = null;

  const drop = (connection: MysqlConnection, err: Error) => {
    connection.__knex__disposed = err;
    connection.destroy();
    connection.stream?.destroy();
  };
  /** SELECT 1 on a fresh connection within stallMs of time this process could hear it (lapse()). */
  const probe = async (): Promise<boolean> => {
    const opened = client.acquireRawConnection();
    const answered = opened.then((c) => new Promise<boolean>((resolve) => c.query('SELECT 1', (err) => resolve(!err))));
    const late = lapse(t.stallMs);
    const ok = await Promise.race([answered.catch(() => false), late.then(() => false)]);
    late.cancel();
    opened.then((c) => drop(c, new Error('probe done')), () => {});
    return ok;
  };
  const check = async () => {
    if (probing) return;
    const now = Date.now();
    if (!down && ![...waiting].some((w) => now - Math.max(w.since, answeredAt) >= t.stallMs)) return;
    probing = true;
    try {
      const ok = await probe();
      if (ok) answeredAt = Date.now();
      if (ok && down) {
        log?.info('database answers again');
        down = null;
      } else if (!ok) {
        if (!down) log?.error(`database did not answer within ${t.stallMs} ms: failing waiting statements and refusing new ones until it does`);
        down ??= new DatabaseTimeoutError(`the database did not answer within ${t.stallMs} ms`);
        for (const w of waiting) w.fail(down);
      }
    } finally {
      probing = false;
      if (!down && !waiting.size && watcher) {
        clearInterval(watcher);
        watcher = null;
      }
    }
  };
  const watch = () => {
    watcher ??= setInterval(() => void check(), Math.min(100, t.stallMs));
    watcher.unref();
  };

  const guarded = (connection: MysqlConnection, obj: unknown, query: (c: MysqlConnection, o: unknown) => Promise<unknown>): Promise<unknown> => {
    const dropped = connection.__knex__disposed;
    if (dropped instanceof DatabaseTimeoutError) {
      // The server rolls back a dropped connection's transaction itself: knex's ROLLBACK succeeds
      // here, so the transaction fails with the deadline error, not with "connection closed".
      const sql = typeof obj === 'string' ? obj : (obj as { sql?: unknown } | null)?.sql;
      return typeof sql === 'string' && /^\s*ROLLBACK\b/i.test(sql) ? Promise.resolve(obj) : Promise.reject(dropped);
    }
    if (down) {
      drop(connection, down);
      return Promise.reject(down);
    }
    // Migrations may wait minutes for another process's migration lock (GET_LOCK) or rebuild a large
    // table: neither the statement limit nor the stall probe applies to them.
    if (unlimited.has(db)) return query(connection, obj);
    const limit = t.statementMs;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const w = {
        since: Date.now(),
        fail(err: Error) {
          if (!waiting.delete(w)) return;
          clearTimeout(timer);
          drop(connection, err);
          reject(err);
        },
      };
      waiting.add(w);
      if (t.stallMs > 0) watch();
      if (limit > 0) timer = setTimeout(() => w.fail(new DatabaseTimeoutError(`a statement ran over ${limit} ms`)), limit);
      query(connection, obj).then(
        (r) => {
          if (waiting.delete(w)) (clearTimeout(timer), resolve(r));
        },
        (err) => {
          if (waiting.delete(w)) (clearTimeout(timer), reject(err));
        },
      );
    });
  };
  // A subclass of this db's own: knex builds each transaction's client from `client.constructor`'s
  // prototype, so statements inside transactions pass through the guard too.
  const Base = client.constructor as new (...args: any[]) => KnexClientInternals;
  class Guarded extends Base {
    override acquireConnection(): Promise<unknown> {
      return down ? Promise.reject(down) : super.acquireConnection();
    }
    override _query(connection: MysqlConnection, obj: unknown): Promise<unknown> {
      return guarded(connection, obj, (c, o) => super._query(c, o));
    }
    override destroy(callback?: unknown): Promise<void> {
      if (watcher) clearInterval(watcher);
      watcher = null;
      down = null;
      return super.destroy(callback);
    }
  }
  Object.setPrototypeOf(client, Guarded.prototype);
}

/** How often lapse() looks at the clock; a longer gap between its looks counts as LAPSE_TICK_MS × 2. */
const LAPSE_TICK_MS = 25;

/**
 * Resolves once `ms` have passed in which this process could have heard an answer. A stretch the
 * event loop was held (a long garbage collection, a burst of synchronous work on an overloaded host)
 * counts at most LAPSE_TICK_MS × 2: with a plain timer, a probe started just before a 1 s stall
 * timed out as the loop came back, before the answer waiting on the socket was read, and the database
 * was declared down for the process's own stall (false 503s). The verdict also waits one poll of I/O
 * (setImmediate), so an answer that arrived meanwhile is read first.
 */
function lapse(ms: number): Promise<void> & { cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const done = new Promise<void>((resolve) => {
    let counted = 0;
    let last = performance.now();
    timer = setInterval(() => {
      const now = performance.now();
      counted += Math.min(now - last, LAPSE_TICK_MS * 2);
      last = now;
      if (counted < ms) return;
      clearInterval(timer);
      setImmediate(resolve);
    }, LAPSE_TICK_MS);
  });
  return Object.assign(done, { cancel: () => clearInterval(timer) });
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
 * On SQLITE_FULL (and I/O errors) SQLite rolls the whole transaction back by itself; knex's own
 * ROLLBACK then fails ("no transaction is active") and knex rejects with that error instead of the
 * one that mattered, which a caller can no longer recognise (disk full → 503). A ROLLBACK with no
 * transaction open is therefore a no-op here. (A subclass of the client: knex builds each
 * transaction's client from `client.constructor`'s prototype.)
 */
function keepFirstError(db: Db): void {
  type Client = { _query(connection: { inTransaction?: boolean }, obj: { sql?: string } | string): Promise<unknown> };
  const client = db.client as unknown as Client;
  const Base = client.constructor as new (...args: any[]) => Client;
  class RollbackOnce extends Base {
    override _query(connection: { inTransaction?: boolean }, obj: { sql?: string } | string): Promise<unknown> {
      const sql = typeof obj === 'string' ? obj : obj?.sql;
      if (connection.inTransaction === false && typeof sql === 'string' && /^\s*ROLLBACK\b/i.test(sql)) return Promise.resolve(obj);
      return super._query(connection, obj);
    }
  }
  Object.setPrototypeOf(client, RollbackOnce.prototype);
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
export async function migrateLatest(db: Db, config?: Knex.MigratorConfig): Promise<string[]> {
  const run = async () => ((await db.migrate.latest(config)) as [number, string[]])[1];
  if (!isMysql(db)) return migrateSqlite(db, run);
  unlimited.add(db);
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
  }).finally(() => unlimited.delete(db));
}

/**
 * SQLite changes a column by rebuilding its table (create a copy, move the rows, drop the old one).
 * With foreign keys on, dropping the old table deletes every row that references it ON DELETE
 * CASCADE (and nulls ON DELETE SET NULL ones): a migration that alters `links` would take the links'
 * payments and deliveries with it. The pragma cannot change inside a transaction, and knex runs each
 * migration in one, so it is turned off around the whole run — SQLite's own procedure for schema
 * changes — and the references are checked before it is turned back on.
 */
async function migrateSqlite(db: Db, run: () => Promise<string[]>): Promise<string[]> {
  await db.raw('PRAGMA foreign_keys = OFF');
  try {
    const applied = await run();
    const broken = (await db.raw('PRAGMA foreign_key_check')) as { table: string; rowid: number; parent: string }[];
    if (broken.length) {
      const first = broken.slice(0, 5).map((b) => `${b.table} row ${b.rowid} → ${b.parent}`).join(', ');
      throw new Error(`After migrating, ${broken.length} row(s) reference rows that do not exist (${first}). Restore the backup taken before the upgrade and report this.`);
    }
    return applied;
  } finally {
    await db.raw('PRAGMA foreign_keys = ON');
  }
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
