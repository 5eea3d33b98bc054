import { expect } from 'chai';
import fs from 'node:fs';
import { createDb, type Db } from '../src/core/db.ts';
import { createLogger } from '../src/core/log.ts';
import { scratchConfig, scratchSqliteDatabase } from '../src/core/scratch.ts';
import { checkpointInBackground, type BackgroundCheckpoints } from '../src/core/sqlite-checkpoint.ts';
import { createRuntime } from '../src/runtime.ts';
import { waitFor } from './support/wait.ts';

/** Pages SQLite keeps in the WAL before a commit checkpoints by itself (0: never). */
async function autocheckpoint(db: Db): Promise<number> {
  const rows = (await db.raw('PRAGMA wal_autocheckpoint')) as { wal_autocheckpoint: number }[];
  return Number(rows[0].wal_autocheckpoint);
}

async function writeRows(db: Db, n: number): Promise<void> {
  for (let i = 0; i < n; i += 100) {
    await db.transaction(async (trx) => {
      await trx('t').insert(Array.from({ length: 100 }, (_, j) => ({ body: `row ${i + j} ${'x'.repeat(400)}` })));
    });
  }
}

describe('SQLite WAL checkpoints on a worker thread', () => {
  let scratch: Awaited<ReturnType<typeof scratchSqliteDatabase>>;
  let db: Db;
  let checkpoints: BackgroundCheckpoints | null;
  const logged: string[] = [];
  const log = createLogger('silent');
  log.error = (message: string) => void logged.push(message);

  beforeEach(async () => {
    scratch = await scratchSqliteDatabase();
    db = createDb({ client: 'sqlite', filename: scratch.url });
    await db.schema.createTable('t', (t) => {
      t.increments('id');
      t.text('body');
    });
    checkpoints = null;
    logged.length = 0;
  });
  afterEach(async () => {
    await checkpoints?.stop();
    await db.destroy();
    await scratch.drop();
  });

  it('without it, a commit that passes 1,000 WAL pages checkpoints inside the commit (the WAL restarts)', async () => {
    // The negative control: SQLite's default is what the worker takes over.
    expect(await autocheckpoint(db)).to.equal(1000);
    await writeRows(db, 12_000);
    const walPages = fs.statSync(`${scratch.url}-wal`).size / 4096;
    // The file keeps its high-water size, but it never grew far past the threshold: commits checkpointed.
    expect(walPages).to.be.lessThan(1_500);
  });

  it('turns automatic checkpoints off on the app connection and checkpoints from the worker', async () => {
    checkpoints = await checkpointInBackground(db, scratch.url, log, 60_000);
    expect(await autocheckpoint(db)).to.equal(0);
    await writeRows(db, 12_000);
    expect(fs.statSync(`${scratch.url}-wal`).size / 4096).to.be.greaterThan(1_500); // no commit checkpointed
    const r = await checkpoints.now();
    expect(r.log).to.be.greaterThan(1_500);
    expect(r.checkpointed).to.equal(r.log);
    // Every row is in the database file: a fresh connection reading without the WAL sees them all.
    const copy = `${scratch.url}.copy`;
    fs.copyFileSync(scratch.url, copy);
    const reader = createDb({ client: 'sqlite', filename: copy });
    try {
      const [{ n }] = (await reader('t').count({ n: '*' })) as { n: number }[];
      expect(Number(n)).to.equal(12_000);
    } finally {
      await reader.destroy();
      for (const f of [copy, `${copy}-wal`, `${copy}-shm`]) fs.rmSync(f, { force: true });
    }
    expect(logged).to.deep.equal([]);
  });

  it('checkpoints on its timer: the WAL stays small under steady writes', async () => {
    checkpoints = await checkpointInBackground(db, scratch.url, log, 10);
    for (let i = 0; i < 12; i++) {
      await writeRows(db, 1_000);
      await new Promise((r) => setTimeout(r, 40)); // time for a timer run between bursts
    }
    // Same writes as the test above, where nothing checkpointed and the WAL passed 1,500 pages.
    expect(fs.statSync(`${scratch.url}-wal`).size / 4096).to.be.lessThan(1_000);
  });

  it('falls back to checkpoints in commits when the worker fails, and says so', async () => {
    checkpoints = await checkpointInBackground(db, `${scratch.url}.missing`, log, 60_000);
    await waitFor(() => logged.length > 0);
    expect(logged.join('\n')).to.match(/background WAL checkpoints stopped/);
    await waitFor(async () => (await autocheckpoint(db)) === 1000);
  });

  it('runs under the runtime for a SQLite file and stops with it', async () => {
    const s = scratchConfig({ DATABASE_URL: scratch.url, LOG_LEVEL: 'silent' });
    const rt = await createRuntime(s.config, { migrate: true });
    try {
      expect(await autocheckpoint(rt.db)).to.equal(0);
    } finally {
      await rt.close();
      s.remove();
    }
  });
});

interface Statement {
  source: string;
  iterate(): IterableIterator<unknown>;
}

describe('SQLite connection: prepared statements reused', () => {
  let scratch: ReturnType<typeof scratchSqliteDatabase>;
  let db: Db;
  beforeEach(async () => {
    scratch = scratchSqliteDatabase();
    db = createDb({ client: 'sqlite', filename: scratch.url });
    await db.schema.createTable('t', (t) => {
      t.increments('id');
      t.text('body');
    });
  });
  afterEach(async () => {
    await db.destroy();
    await scratch.drop();
  });

  /** The statements the pooled connection's prepare() handed out, in order. */
  async function watchPrepares(): Promise<Statement[]> {
    const handed: Statement[] = [];
    await db.transaction(async (trx) => {
      const conn = await (trx.client as { acquireConnection(): Promise<{ prepare(sql: string): Statement }> }).acquireConnection();
      const prepare = conn.prepare;
      conn.prepare = (sql: string) => {
        const st = prepare(sql);
        handed.push(st);
        return st;
      };
    });
    return handed;
  }

  it('runs the same SQL text on the same statement, with fresh values each time', async () => {
    const handed = await watchPrepares();
    for (let i = 0; i < 3; i++) await db('t').insert({ body: `row ${i}` });
    const bodies = [];
    for (let i = 1; i <= 3; i++) bodies.push(((await db('t').where({ id: i }).first()) as { body: string }).body);
    expect(bodies).to.deep.equal(['row 0', 'row 1', 'row 2']);
    const inserts = handed.filter((s) => s.source.startsWith('insert'));
    const selects = handed.filter((s) => s.source.startsWith('select'));
    expect([inserts.length, selects.length]).to.deep.equal([3, 3]);
    expect(new Set(inserts).size).to.equal(1);
    expect(new Set(selects).size).to.equal(1);
    expect(inserts[0]).to.not.equal(selects[0]);
  });

  it('prepares anew while the cached statement is busy (an open iteration on it)', async () => {
    await db('t').insert([{ body: 'a' }, { body: 'b' }]);
    const handed = await watchPrepares();
    await db('t').select('body').orderBy('id'); // cached now
    const cached = handed.find((s) => s.source.startsWith('select'))!;
    const open = cached.iterate();
    open.next(); // the statement is busy until the iteration ends
    const rows = (await db('t').select('body').orderBy('id')) as { body: string }[];
    expect(rows.map((r) => r.body)).to.deep.equal(['a', 'b']);
    const selects = handed.filter((s) => s.source.startsWith('select'));
    expect(selects).to.have.length(2);
    expect(selects[1]).to.not.equal(cached);
    open.return?.();
  });
});
