// core/bulk.ts's updateByKeys: many rows' updates in one statement (a sweep's plans moved on, a pump's
// deliveries marked sent). SQLite joins a VALUES list by key, MySQL/MariaDB take CASE … WHEN; both must
// set each row its own values, leave rows whose `where` no longer matches, and touch nothing else.
// Real databases; a table of the test's own.
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, type TestEnv } from './support/harness.ts';
import { insertRows, runStatement, updateByKeys } from '../src/core/bulk.ts';
import { inTransaction } from '../src/core/db.ts';

const TABLE = 'bulk_update_probe';

forEachTarget('updateByKeys', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
    await env.rt.db.schema.createTable(TABLE, (t) => {
      t.increments('id');
      t.integer('n').notNullable();
      t.string('label', 40).nullable();
      t.bigInteger('at').nullable();
      t.integer('hits').notNullable();
      t.string('status', 10).notNullable();
      t.index(['status', 'n']);
    });
  });
  after(async () => {
    await env?.rt.db.schema.dropTableIfExists(TABLE);
    await env?.close();
  });

  it('sets each row its own values (nulls and dates too) and the shared ones, only where the condition still holds', async () => {
    const db = env.rt.db;
    // 600 rows; every seventh is already 'closed' and must not change.
    await insertRows(db, TABLE, ['n', 'label', 'at', 'hits', 'status'], Array.from({ length: 600 }, (_, i) => [i, `row ${i}`, null, 10, i % 7 === 0 ? 'closed' : 'open']));
    const rows = (await db(TABLE).select('id', 'n').orderBy('id')) as { id: number; n: number }[];
    // 500 of them in a scrambled order (the statement must not rely on key order).
    const picked = rows.slice(50, 550).map((r) => Number(r.id));
    const keys = picked.map((_, i) => picked[(i * 211) % picked.length]);
    expect(new Set(keys).size).to.equal(500);
    const when = new Date('2026-12-04T10:00:00.000Z');
    const statements: string[] = [];
    const onQuery = (q: { sql: string }) => statements.push(q.sql);
    db.on('query', onQuery);
    await inTransaction(db, (trx) =>
      updateByKeys(trx, {
        table: TABLE,
        keys,
        perRow: { n: keys.map((k) => k * 1_000), label: keys.map((k) => (k % 2 ? null : `even ${k}`)) },
        same: { hits: trx.raw('hits + ?', [5]), at: when.getTime() },
        where: { status: 'open' },
      }),
    ).finally(() => db.off('query', onQuery));
    // One statement; on SQLite a join by key, not a CASE that tests every key for every row.
    const updates = statements.filter((sql) => sql.includes(`update \`${TABLE}\``));
    expect(updates).to.have.length(1);
    expect(updates[0]).to.match(target.name === 'sqlite' ? /^with v\(/ : /CASE id WHEN/);
    const after = (await db(TABLE).select('*').orderBy('id')) as { id: number; n: number; label: string | null; at: unknown; hits: number; status: string }[];
    const chosen = new Set(keys);
    let updated = 0;
    for (const [i, r] of after.entries()) {
      const id = Number(r.id);
      if (chosen.has(id) && r.status === 'open') {
        updated++;
        expect(Number(r.n), `row ${id}`).to.equal(id * 1_000);
        expect(r.label, `row ${id}`).to.equal(id % 2 ? null : `even ${id}`);
        expect(Number(r.hits)).to.equal(15);
        expect(Number(r.at)).to.equal(when.getTime());
      } else {
        expect(Number(r.n), `row ${id}`).to.equal(i);
        expect(r.label).to.equal(`row ${i}`);
        expect(Number(r.hits)).to.equal(10);
        expect(r.at).to.equal(null);
      }
    }
    // 500 chosen minus the closed ones among them.
    expect(updated).to.equal(keys.filter((k) => after.find((r) => Number(r.id) === k)!.status === 'open').length);
    expect(updated).to.be.within(420, 430);
  });

  it("runs a statement's values as given, in the caller's transaction, with knex's query events; refuses an undefined value before writing", async () => {
    const db = env.rt.db;
    const seen: { sql: string; bindings: unknown[]; uid: string }[] = [];
    const answered: string[] = [];
    const onQuery = (q: { sql: string; bindings: unknown[]; __knexQueryUid: string }) => seen.push({ sql: q.sql, bindings: q.bindings, uid: q.__knexQueryUid });
    const onResponse = (_r: unknown, q: { __knexQueryUid: string }) => answered.push(q.__knexQueryUid);
    db.on('query', onQuery).on('query-response', onResponse);
    const sql = `insert into \`${TABLE}\` (\`n\`, \`label\`, \`at\`, \`hits\`, \`status\`) values (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)`;
    const when = new Date('2026-12-04T11:00:00.000Z');
    try {
      // A label with question marks (values are bound, never read as placeholders); a Date and a boolean as knex binds them.
      await runStatement(db, sql, [9_001, 'who? what??', when.getTime(), true, 'probe', 9_002, null, null, false, 'probe']);
      // Rolled back with its transaction.
      await inTransaction(db, async (trx) => {
        await runStatement(trx, sql, [9_003, 'gone', null, 1, 'probe', 9_004, 'gone', null, 1, 'probe']);
        throw new Error('roll back');
      }).catch((err: Error) => expect(err.message).to.equal('roll back'));
      expect(() => runStatement(db, sql, [9_005, 'x', null, 1, 'probe', 9_006, undefined, null, 1, 'probe'])).to.throw(/Undefined binding at position 6/);
    } finally {
      db.off('query', onQuery).off('query-response', onResponse);
    }
    const rows = (await db(TABLE).where('status', 'probe').orderBy('n').select('n', 'label', 'at', 'hits')) as { n: number; label: string | null; at: unknown; hits: number }[];
    expect(rows.map((r) => [Number(r.n), r.label, r.at === null ? null : Number(r.at), Number(r.hits)])).to.deep.equal([
      [9_001, 'who? what??', when.getTime(), 1],
      [9_002, null, null, 0],
    ]);
    const ours = seen.filter((q) => q.sql === sql);
    expect(ours).to.have.length(2);
    expect(ours[0].bindings).to.deep.equal([9_001, 'who? what??', when.getTime(), true, 'probe', 9_002, null, null, false, 'probe']);
    for (const q of ours) expect(answered).to.include(q.uid);
    await db(TABLE).where('status', 'probe').del();
  });

  it('updates with shared values only (no per-row column)', async () => {
    const db = env.rt.db;
    const ids = ((await db(TABLE).where('status', 'closed').select('id')) as { id: number }[]).map((r) => Number(r.id));
    await updateByKeys(db, { table: TABLE, keys: ids.slice(0, 3), same: { status: 'archived' } });
    expect(Number((await db(TABLE).where('status', 'archived').count({ c: '*' }))[0].c)).to.equal(3);
  });
});
