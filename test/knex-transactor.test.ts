// core/knex-transactor.ts: transactions hand their callback a light transactor (shared prototype, no
// per-transaction copies of knex's ~150 members). It must offer exactly what knex's own transactor
// offers — compared member by member against one knex makes, so a knex upgrade that changes them
// fails here — and behave the same on both databases: commit, rollback, savepoints, raw, fn, events,
// a transaction without a callback, a query after the end.
import { EventEmitter } from 'node:events';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { forEachTarget } from './support/targets.ts';
import { build, type TestEnv } from './support/harness.ts';
import { KNEX_VERSION, lightenTransactions, transactorsForComparison } from '../src/core/knex-transactor.ts';

/** Every member reachable on `o` (own and inherited, up to Function.prototype / Object.prototype), with its kind. */
function members(o: object): Record<string, string> {
  const out: Record<string, string> = {};
  for (let p: object | null = o; p && p !== Function.prototype && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const [key, d] of Object.entries(Object.getOwnPropertyDescriptors(p))) {
      if (key in out || ['length', 'name', 'prototype', 'arguments', 'caller'].includes(key)) continue;
      out[key] = d.get || d.set ? `accessor${d.set ? ' (settable)' : ''}` : typeof d.value === 'function' ? 'method' : typeof d.value;
    }
  }
  return out;
}

describe('light knex transactors (unit)', () => {
  it(`is written against knex ${KNEX_VERSION}, the version installed, and applies`, () => {
    expect(lightenTransactions()).to.equal(true);
  });

  it('offers every member of a transactor knex makes, of the same kind, and its context the same methods', () => {
    const client = new EventEmitter();
    const { knexMade, light } = transactorsForComparison(client);
    expect(members(light)).to.deep.equal(members(knexMade));
    expect(members(light.context)).to.deep.equal(members(knexMade.context));
    expect(Object.keys(members(light)).length).to.be.greaterThan(100);
    // Each wired to its own client and state.
    expect(light.client).to.equal(client);
    expect(light.context).to.not.equal(transactorsForComparison(client).light.context);
    // Each object passes the client's events on to its own listeners: one 'query' listener per object made (4 so far).
    expect(client.listenerCount('query')).to.equal(4);
  });
});

forEachTarget('light knex transactors', (target) => {
  let env: TestEnv;
  let db: Knex;
  const TABLE = 'trx_probe';
  before(async () => {
    env = await build(target);
    db = env.rt.db;
    await db.schema.createTable(TABLE, (t) => {
      t.increments('id');
      t.string('label', 40).notNullable();
    });
  });
  after(async () => {
    await db?.schema.dropTableIfExists(TABLE);
    await env?.close();
  });
  const labels = async () => ((await db(TABLE).select('label').orderBy('id')) as { label: string }[]).map((r) => r.label);

  it('commits, rolls back on a throw, and keeps the outer work when a savepoint rolls back', async () => {
    await db.transaction(async (trx) => {
      // The light one (its members come from a shared prototype), not knex's.
      expect(Object.getPrototypeOf(trx)).to.not.equal(Function.prototype);
      expect(trx.isTransaction).to.equal(true);
      await trx(TABLE).insert({ label: 'kept' });
    });
    const failed = await db
      .transaction(async (trx) => {
        await trx(TABLE).insert({ label: 'rolled back' });
        throw new Error('boom');
      })
      .catch((e: Error) => e.message);
    expect(failed).to.equal('boom');
    await db.transaction(async (trx) => {
      await trx(TABLE).insert({ label: 'outer' });
      const inner = await trx
        .transaction(async (sp) => {
          expect(sp.isTransaction).to.equal(true);
          await sp(TABLE).insert({ label: 'savepoint' });
          throw new Error('inner');
        })
        .catch((e: Error) => e.message);
      expect(inner).to.equal('inner');
      await trx.savepoint(async (sp) => {
        await sp(TABLE).insert({ label: 'savepoint kept' });
      });
    });
    expect(await labels()).to.deep.equal(['kept', 'outer', 'savepoint kept']);
  });

  it('runs raw SQL and fn.now(), reports its queries to its own listeners and the main instance’s, and refuses a query after it ended', async () => {
    const seen: string[] = [];
    const onMain = (q: { sql: string }) => seen.push(`main:${q.sql}`);
    db.on('query', onMain);
    let after: Knex.Transaction | null = null;
    try {
      await db.transaction(async (trx) => {
        trx.on('query', (q: { sql: string }) => seen.push(`trx:${q.sql}`));
        const raw = await trx.raw('select 41 + 1 as n');
        // SQLite answers the rows; mysql2 [rows, fields].
        expect(JSON.stringify(raw)).to.include('"n":42');
        const rows = await trx(TABLE).insert({ label: 'timed' });
        expect(rows).to.have.length(1);
        expect(trx.fn.now()).to.have.property('sql');
        after = trx;
      });
    } finally {
      db.off('query', onMain);
    }
    expect(seen.filter((s) => s.startsWith('trx:')).length).to.be.greaterThan(0);
    expect(seen.filter((s) => s.startsWith('trx:') && /insert/i.test(s))).to.have.length(1);
    expect(seen.filter((s) => s.startsWith('main:') && /insert/i.test(s))).to.have.length(1);
    const late = await after!(TABLE).select('id').catch((e: Error) => e.message);
    expect(late).to.match(/Transaction query already complete/);
  });

  it('works without a callback: the transaction is handed back, committed or rolled back by hand', async () => {
    const trx = await db.transaction();
    await trx(TABLE).insert({ label: 'by hand' });
    await trx.commit();
    expect(trx.isCompleted()).to.equal(true);
    const other = await db.transaction();
    await other(TABLE).insert({ label: 'undone' });
    await other.rollback();
    const all = await labels();
    expect(all).to.include('by hand');
    expect(all).to.not.include('undone');
  });
});
