// A plugin's store writes a batch (an outbox's messages) in one transaction, in statements sized by
// their data (about 256 KiB each; between them core/pace.ts lets other work run once the loop has
// been held for its slice — how long that is depends on the machine, so the bench measures it, not
// this test). Real databases.
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type TestEnv } from './support/harness.ts';
import { createPluginStore } from '../src/core/plugins/store.ts';
import { rowsFor } from '../src/core/bulk.ts';

describe('rowsFor', () => {
  it('sizes statements to about 256 KiB of rows, in a few fixed steps from 16 to 500', () => {
    expect([10, 500, 4_200, 9_000, 40_000, 1_000_000].map((b) => rowsFor(b))).to.deep.equal([500, 500, 32, 16, 16, 16]);
    expect(rowsFor(1_000)).to.equal(256);
  });
});

forEachTarget('plugin store: insertMany', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
  });
  after(async () => {
    await env?.close();
  });

  it('stores every record of a large batch, in order, in statements of about 256 KiB', async () => {
    const owner = await signUp(env.app);
    const merchant = (await env.rt.services.merchants.getByHandle(owner.handle))!;
    const m = env.rt.services.merchants;
    const store = createPluginStore(env.rt.db, env.rt.clock, 'test-store', { keyOf: (id) => m.keyOf(id), publicIdsOf: (keys) => m.publicIdsOf(keys) });
    const statements: number[] = [];
    const onQuery = (q: { sql: string; bindings?: unknown[] }) => {
      if (/^insert into `plugin_records`/.test(q.sql)) statements.push((q.bindings?.length ?? 0) / 7);
    };
    env.rt.db.on('query', onQuery);
    try {
      const body = 'x'.repeat(4_000);
      const saved = await store.insertMany('messages', Array.from({ length: 300 }, (_, i) => ({ merchantId: merchant.id, data: { n: i, body } })));
      expect(saved).to.have.length(300);
    } finally {
      env.rt.db.off('query', onQuery);
    }
    expect(statements.reduce((a, b) => a + b, 0)).to.equal(300);
    expect(Math.max(...statements), 'rows per statement').to.equal(32);
    const stored = (await env.rt.db('plugin_records').where({ plugin_id: 'test-store' }).orderBy('id').select('data')) as { data: string }[];
    expect(stored.map((r) => (JSON.parse(r.data) as { n: number }).n)).to.deep.equal(Array.from({ length: 300 }, (_, i) => i));
  });
});
