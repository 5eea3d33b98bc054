// SQLite rebuilds a table to change a column. With foreign keys on, dropping the old copy would
// delete (ON DELETE CASCADE) or orphan (SET NULL) every row that references it — payments,
// deliveries — so migrations run with foreign keys off and are checked after. Real SQLite files,
// knex's own migrator.
import { expect } from 'chai';
import type { Knex } from 'knex';
import { createDb, migrateLatest, type Db } from '../src/core/db.ts';
import { scratchSqliteDatabase } from '../src/core/scratch.ts';

type Up = (k: Knex) => Promise<void>;
/** A migration source of these migrations, in order. */
const source = (migrations: [string, Up][]): Knex.MigratorConfig => ({
  migrationSource: {
    getMigrations: async () => migrations.map(([name]) => name),
    getMigrationName: (name: string) => name,
    getMigration: async (name: string) => ({ up: migrations.find(([n]) => n === name)![1], down: async () => {} }),
  },
});

const make: [string, Up] = [
  '1_make',
  async (k) => {
    await k.schema.createTable('parent', (t) => {
      t.increments('id');
      t.string('name', 10);
    });
    await k.schema.createTable('child', (t) => {
      t.increments('id');
      t.integer('parent_id').unsigned().references('id').inTable('parent').onDelete('CASCADE');
      t.integer('other_id').unsigned().nullable().references('id').inTable('parent').onDelete('SET NULL');
    });
  },
];
/** Widens parent.name: SQLite rebuilds `parent`. */
const alter: [string, Up] = ['2_alter', (k) => k.schema.alterTable('parent', (t) => void t.string('name', 50).alter())];

describe('SQLite migrations that rebuild a table', () => {
  let scratch: Awaited<ReturnType<typeof scratchSqliteDatabase>>;
  let db: Db;
  beforeEach(async () => {
    scratch = await scratchSqliteDatabase();
    db = createDb({ client: 'sqlite', filename: scratch.url });
    await migrateLatest(db, source([make]));
    await db('parent').insert([{ id: 1, name: 'a' }, { id: 2, name: 'b' }]);
    await db('child').insert([{ parent_id: 1, other_id: 2 }, { parent_id: 2, other_id: 1 }]);
  });
  afterEach(async () => {
    await db.destroy();
    await scratch.drop();
  });

  it('keep the rows that reference the rebuilt table, and foreign keys stay enforced after', async () => {
    expect(await migrateLatest(db, source([make, alter]))).to.deep.equal(['2_alter']);
    expect(await db('child').orderBy('id').select('parent_id', 'other_id')).to.deep.equal([{ parent_id: 1, other_id: 2 }, { parent_id: 2, other_id: 1 }]);
    expect((await db.raw('PRAGMA foreign_keys')) as unknown).to.deep.equal([{ foreign_keys: 1 }]);
    // Enforced again: deleting a parent cascades, a dangling reference is refused.
    await db('parent').where({ id: 1 }).del();
    expect(await db('child').select('parent_id', 'other_id')).to.deep.equal([{ parent_id: 2, other_id: null }]);
    let refused: unknown = null;
    await db('child').insert({ parent_id: 99 }).catch((err: unknown) => (refused = err));
    expect(String(refused)).to.match(/FOREIGN KEY constraint failed/);
  });

  it('(negative control) with foreign keys on, the same migration takes the children with it', async () => {
    // What knex does on its own: the pragma cannot change inside the migration's transaction.
    await db.migrate.latest(source([make, alter]));
    expect(await db('child').select('parent_id', 'other_id')).to.deep.equal([]);
  });

  it('refuses to finish a migration that leaves references dangling, and turns the checks back on', async () => {
    const orphan: [string, Up] = ['2_orphan', (k) => k.raw('DELETE FROM parent WHERE id = 2')];
    let failed: unknown = null;
    await migrateLatest(db, source([make, orphan])).catch((err: unknown) => (failed = err));
    expect(String(failed)).to.match(/2 row\(s\) reference rows that do not exist \(child row \d+ → parent/);
    expect((await db.raw('PRAGMA foreign_keys')) as unknown).to.deep.equal([{ foreign_keys: 1 }]);
  });
});
