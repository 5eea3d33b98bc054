// MySQL/MariaDB deadlines (core/db.ts): a statement over DB_QUERY_TIMEOUT_MS fails and its connection
// is dropped; a statement that is only slow on a server that still answers is left alone by the stall
// probe; inside a transaction the limit holds too. (A server that stops answering: health.test.ts.)
import { expect } from 'chai';
import { MARIADB_TARGET } from './support/targets.ts';
import { createTestDatabase } from './support/harness.ts';
import { createDb, DatabaseTimeoutError, type Db } from '../src/core/db.ts';

(MARIADB_TARGET ? describe : describe.skip)('database deadlines [mariadb]', function () {
  this.timeout(30_000);
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  const dbs: Db[] = [];
  const open = (timeouts: { acquireMs: number; stallMs: number; statementMs: number }) => {
    const db = createDb({ client: 'mysql', url: database.url }, { timeouts });
    dbs.push(db);
    return db;
  };
  before(async () => {
    database = await createTestDatabase(MARIADB_TARGET!);
  });
  after(async () => {
    for (const db of dbs) await db.destroy();
    await database?.drop();
  });

  it('fails a statement that runs over the limit, inside a transaction too, and the pool goes on', async () => {
    const db = open({ acquireMs: 2_000, stallMs: 200, statementMs: 500 });
    const err = await db.raw('SELECT SLEEP(3)').then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(DatabaseTimeoutError);
    expect((err as DatabaseTimeoutError).code).to.equal('ETIMEDOUT');
    const inTrx = await db.transaction(async (trx) => trx.raw('SELECT SLEEP(3)')).then(() => null, (e: unknown) => e);
    expect(inTrx).to.be.instanceOf(DatabaseTimeoutError);
    const [[row]] = (await db.raw('SELECT 1 AS one')) as [[{ one: number }]];
    expect(row.one).to.equal(1);
  });

  it("does not take this process's own stall for the database's: a 1 s block of the event loop during the probe fails nothing", async () => {
    const db = open({ acquireMs: 2_000, stallMs: 200, statementMs: 0 });
    await db.raw('SELECT 1'); // the pool's connection is open: only the probe connects during the block
    const slow = db.raw('SELECT SLEEP(0.4) AS slept').then(
      () => 'answered',
      (e: unknown) => (e instanceof DatabaseTimeoutError ? 'failed as a database timeout' : String(e)),
    );
    // Once the statement has waited stallMs the guard probes the server on a fresh connection: the
    // moment it starts connecting, this process holds its event loop for a second.
    const client = db.client as { acquireRawConnection(): Promise<unknown> };
    const connect = client.acquireRawConnection.bind(client);
    let blocked = 0;
    client.acquireRawConnection = () => {
      const opening = connect();
      // Right after the probe has set its deadline (the rest of its synchronous start).
      if (blocked++ === 0) {
        queueMicrotask(() => {
          const until = Date.now() + 1_000;
          while (Date.now() < until) {
            // a synchronous burst: the probe's answer waits on the socket meanwhile
          }
        });
      }
      return opening;
    };
    expect(await slow).to.equal('answered');
    expect(blocked, 'the probe connected').to.be.greaterThan(0);
    const [[row]] = (await db.raw('SELECT 1 AS one')) as [[{ one: number }]];
    expect(row.one).to.equal(1);
  });

  it('lets a slow statement finish while the server answers the stall probe', async () => {
    const db = open({ acquireMs: 2_000, stallMs: 200, statementMs: 0 });
    const [[row]] = (await db.raw('SELECT SLEEP(1.5) AS slept')) as [[{ slept: number }]];
    expect(Number(row.slept)).to.equal(0);
  });
});
