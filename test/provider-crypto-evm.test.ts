// provider-crypto-evm against a real chain: ganache on loopback, an ERC-20 compiled with solc and
// deployed in the test, real transfers from test wallets, and the watcher run as the scheduled job
// it is in production (through a JSON-RPC proxy that can fail). The merchant's addresses come from
// a known test xpub and must equal what a standard wallet library derives from the mnemonic.
import { expect } from 'chai';
import supertest from 'supertest';
import { randomBytes } from 'node:crypto';
import { HDKey, mnemonicToAccount } from 'viem/accounts';
import type { Hex } from 'viem';
import { forEachTarget, TARGETS } from './support/targets.ts';
import { useBrowser, serve, signUpInBrowser, PHONE, type ServedEnv, type TrackedPage } from './support/browser.ts';
import { build, csrfFrom, fieldError, signUp, uniqueHandle, type Account, type TestEnv } from './support/harness.ts';
import { startChain, rpcProxy, TEST_MNEMONIC, TEST_XPUB, CHAIN_ID, type Chain } from './support/evm.ts';
import { deriveAddress, parseXpub } from '../plugins/provider-crypto-evm/chain.ts';
import { verificationCode } from '../plugins/provider-crypto-evm/index.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Link } from '../src/features/links/service.ts';
import { ValidationError } from '../src/core/errors.ts';
import { createLogger } from '../src/core/log.ts';
import { createPluginStore } from '../src/core/plugins/store.ts';

const START = new Date('2026-03-02T09:00:00Z');
const MINUTE = 60_000;
const CONFIRMATIONS = 3;
const SCAN = 'plugin.provider-crypto-evm.scan';

describe('provider-crypto-evm: addresses from an xpub', () => {
  it('derives the same receiving addresses as a standard wallet library does from the mnemonic', () => {
    const key = parseXpub(TEST_XPUB)!;
    for (const i of [0, 1, 2, 7, 1000]) expect(deriveAddress(key, i)).to.equal(mnemonicToAccount(TEST_MNEMONIC, { addressIndex: i }).address);
  });
  it('rejects what is not an extended public key, and private keys', () => {
    expect(parseXpub('xpub123')).to.equal(null);
    expect(parseXpub(TEST_XPUB.slice(0, -1) + (TEST_XPUB.endsWith('P') ? 'Q' : 'P')), 'bad checksum').to.equal(null);
    expect(parseXpub('xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi'), 'an xprv').to.equal(null);
  });
  it('gives every checkout a short verification code', () => {
    expect(verificationCode('cs_aaaaaaaaaaaaaaaaaaaaaa')).to.match(/^[2-9A-HJ-NP-Z]{3}-[2-9A-HJ-NP-Z]{3}$/);
    expect(verificationCode('cs_aaaaaaaaaaaaaaaaaaaaaa')).to.not.equal(verificationCode('cs_aaaaaaaaaaaaaaaaaaaaab'));
  });
});

/** Ganache with two stablecoins (6 and 18 decimals) behind a fault-injecting RPC proxy, and the plugin's config for it. */
async function testChain(opts: { maxBlockRange: number }) {
  const chain = await startChain(START);
  const usdt = await chain.deploy('USDT', 6);
  const dai = await chain.deploy('DAI', 18);
  const proxy = await rpcProxy(chain.url);
  const startBlock = await chain.blockNumber();
  const config = {
    networks: [
      {
        id: 'testnet',
        name: 'Testnet',
        chainId: CHAIN_ID,
        rpcUrl: proxy.url,
        confirmations: CONFIRMATIONS,
        startBlock,
        maxBlockRange: opts.maxBlockRange,
        tokens: [
          { symbol: 'USDT', address: usdt, decimals: 6, currency: 'USD' },
          { symbol: 'DAI', address: dai, decimals: 18, currency: 'USD' },
        ],
        // Ganache's own coin stands for a USD-pegged native coin (xDAI on Gnosis).
        native: { symbol: 'XDAI', decimals: 18, currency: 'USD' },
      },
    ],
    rpcBackoffMs: 1,
    watchHours: 24,
  };
  return { chain, usdt, dai, proxy, startBlock, config };
}

forEachTarget('provider-crypto-evm (ganache)', (target) => {
  let chain: Chain;
  let proxy: Awaited<ReturnType<typeof rpcProxy>>;
  let env: TestEnv;
  let shop: Merchant;
  let usdt: Hex;
  let dai: Hex;
  let startBlock: number;
  let config: Record<string, unknown>;
  let owner: Account;

  before(async function () {
    this.timeout(300_000);
    ({ chain, usdt, dai, proxy, startBlock, config } = await testChain({ maxBlockRange: 4 }));
    env = await build(target, { env: { PAYLINK_PLUGIN_PROVIDER_CRYPTO_EVM: JSON.stringify(config) } });
    owner = await signUp(env.app, { name: 'Harbour Yoga' });
    shop = (await env.rt.services.merchants.getByHandle(owner.handle))!;
    await env.rt.services.providers.update(shop.key, 'crypto-evm', { enabled: true, settings: { xpub: TEST_XPUB, tokens: ['testnet:usdt', 'testnet:dai'] } });
  });
  after(async () => {
    await env?.close();
    await proxy?.close();
    await chain?.close();
  });

  let made = 0;
  const newLink = (amount = 2500, limit: number | null = null) => env.rt.services.links.create(shop, { type: 'amount', name: `Class ${++made}`, amount, currency: 'USD', payment_limit: limit });
  const begin = async (link: Link, amount = 2500) => {
    const r = await env.rt.services.checkout.start(shop, link, { amount, currency: 'USD', name: 'Ana', email: 'ana@example.test', provider: 'crypto-evm' });
    const rec = (await env.rt.db('plugin_records').where({ plugin_id: 'provider-crypto-evm', collection: 'sessions', unique_key: r.session.id }).first()) as { data: string };
    return { ...r, data: JSON.parse(rec.data) as { address: Hex; index: number; code: string; state: string; pending: unknown[]; transfers: { txHash: string }[] } };
  };
  const sessionData = async (sessionId: string) => JSON.parse(((await env.rt.db('plugin_records').where({ plugin_id: 'provider-crypto-evm', collection: 'sessions', unique_key: sessionId }).first()) as { data: string }).data);
  const paymentRow = (id: string) => env.rt.db('payments').where({ public_id: id }).first();
  const events = async (type: string, paymentId: string) =>
    ((await env.rt.db('events').where({ type }).select('payload')) as { payload: string }[]).map((r) => JSON.parse(r.payload)).filter((p) => p.paymentId === paymentId);
  const scan = async () => {
    await env.rt.jobs.enqueue(env.rt.db, SCAN, {});
    await env.rt.jobs.drain();
  };
  /** Moves Paylink's clock and the chain's together. */
  const later = async (ms: number) => {
    env.clock.advance(ms);
    await chain.increaseTime(Math.round(ms / 1000));
    await chain.mine(1);
  };

  it('validates the merchant settings by field: a bad xpub, an unknown token; shows the first address', async () => {
    const bad = await env.rt.services.providers.update(shop.key, 'crypto-evm', { settings: { xpub: 'not-a-key', tokens: ['testnet:usdt'] } }).then(() => null, (e) => e);
    expect(bad).to.be.instanceOf(ValidationError);
    expect(bad.errors.map((e: { field: string }) => e.field)).to.include('settings.xpub');
    const unknown = await env.rt.services.providers.update(shop.key, 'crypto-evm', { settings: { xpub: TEST_XPUB, tokens: ['mainnet:shib'] } }).then(() => null, (e) => e);
    expect(unknown.errors.map((e: { field: string }) => e.field)).to.include('settings.tokens');
    const saved = await env.rt.services.providers.get(shop.key, 'crypto-evm');
    expect(saved.settings.firstAddress).to.equal(mnemonicToAccount(TEST_MNEMONIC, { addressIndex: 0 }).address);
    expect(saved.settings.tokens, 'the failed saves changed nothing').to.deep.equal(['testnet:usdt', 'testnet:dai']);
  });

  it('Settings → Payments: the crypto form shows the first address, and a bad xpub is answered 422 next to its field', async () => {
    const owner = await signUp(env.app, { name: 'Tide Pottery' });
    const page = await owner.agent.get('/app/settings/payments').expect(200);
    expect(page.text).to.include('Extended public key (xpub)');
    const csrf = csrfFrom(page.text);
    const bad = await owner.agent.post('/app/settings/payments/crypto-evm').type('form').send({ _csrf: csrf, enabled: ['0', '1'], 'settings.xpub': 'my seed words here', 'settings.tokens': 'testnet:usdt' }).expect(422);
    expect(fieldError(bad.text, 'crypto-evm-xpub')).to.match(/not an extended public key/);
    expect(bad.text, 'what was typed is shown again').to.include('value="testnet:usdt"');
    await owner.agent.post('/app/settings/payments/crypto-evm').type('form').send({ _csrf: csrf, enabled: ['0', '1'], 'settings.xpub': TEST_XPUB, 'settings.tokens': 'testnet:usdt, testnet:dai' }).expect(303);
    const saved = await owner.agent.get('/app/settings/payments').expect(200);
    expect(saved.text).to.include(`Your first address: <code>${mnemonicToAccount(TEST_MNEMONIC, { addressIndex: 0 }).address}</code>`);
    expect(saved.text).to.include('value="testnet:usdt, testnet:dai"');
  });

  it('gives each checkout its own address: consecutive indexes, none shared, under concurrency', async () => {
    const link = await newLink();
    const started = await Promise.all(Array.from({ length: 8 }, () => begin(link)));
    const indexes = started.map((s) => s.data.index).sort((a, b) => a - b);
    expect(new Set(indexes).size).to.equal(8);
    expect(indexes[7] - indexes[0], 'no gaps').to.equal(7);
    for (const s of started) expect(s.data.address).to.equal(mnemonicToAccount(TEST_MNEMONIC, { addressIndex: s.data.index }).address);
  });

  it('exact payment: confirming (1 of 3) on the tracker, then paid with its tx hash after 3 confirmations', async function () {
    this.timeout(90_000);
    const link = await newLink(2500);
    const s = await begin(link);
    const tx = await chain.transfer(usdt, 1, s.data.address, 25_000_000n);
    await scan();
    expect((await paymentRow(s.payment.id)).status).to.equal('pending');
    const page = await supertest(env.app).get(`/p/provider-crypto-evm/pay/${s.session.id}`).expect(200);
    expect(page.text).to.include('1 of 3 confirmations').and.include('25.00 USDT').and.include(s.data.address).and.include(s.data.code).and.include('<svg');
    await chain.mine(CONFIRMATIONS - 1);
    await scan();
    const row = await paymentRow(s.payment.id);
    expect(row.status).to.equal('paid');
    expect(JSON.parse(row.payment_method)).to.deep.include({ type: 'crypto', brand: 'usdt', network: 'testnet', txHashes: [tx] });
    expect(await events('payment.succeeded', s.payment.id)).to.have.length(1);
    expect(await events('payment.overpaid', s.payment.id)).to.have.length(0);
    const api = await supertest(env.app).get(`/p/provider-crypto-evm/pay/${s.session.id}`).expect(200);
    expect(api.text).to.include('Paid.');
  });

  it('two transfers in two tokens (6 and 18 decimals) add up to the price: paid, both hashes recorded', async function () {
    this.timeout(90_000);
    const s = await begin(await newLink(2500));
    const a = await chain.transfer(usdt, 1, s.data.address, 10_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect((await paymentRow(s.payment.id)).status).to.equal('pending');
    const partial = await supertest(env.app).get(`/p/provider-crypto-evm/pay/${s.session.id}`).expect(200);
    expect(partial.text).to.include('Partly paid').and.include('15.00 USD');
    const b = await chain.transfer(dai, 2, s.data.address, 15n * 10n ** 18n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    const row = await paymentRow(s.payment.id);
    expect(row.status).to.equal('paid');
    expect(JSON.parse(row.payment_method).txHashes).to.deep.equal([a, b]);
  });

  it('overpaid: paid, and payment.overpaid carries what arrived', async function () {
    this.timeout(90_000);
    const s = await begin(await newLink(2500));
    const tx = await chain.transfer(usdt, 1, s.data.address, 30_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect((await paymentRow(s.payment.id)).status).to.equal('paid');
    const [over] = await events('payment.overpaid', s.payment.id);
    expect(over).to.deep.include({ amount: 2500, amountReceived: 3000, currency: 'USD', provider: 'crypto-evm', txHashes: [tx] });
  });

  it('underpaid: keeps watching until the end, then the payment fails and payment.underpaid says what came; the slot is free again', async function () {
    this.timeout(90_000);
    const link = await newLink(2500, 1);
    const s = await begin(link);
    await chain.transfer(usdt, 1, s.data.address, 12_500_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect((await paymentRow(s.payment.id)).status).to.equal('pending');
    expect(Number((await env.rt.db('links').where({ id: link.key }).first()).held_count)).to.equal(1);
    await later(31 * MINUTE);
    await scan();
    const row = await paymentRow(s.payment.id);
    expect([row.status, row.failure_code]).to.deep.equal(['failed', 'expired']);
    const [under] = await events('payment.underpaid', s.payment.id);
    expect(under).to.deep.include({ amount: 2500, amountReceived: 1250 });
    const page = await supertest(env.app).get(`/p/provider-crypto-evm/pay/${s.session.id}`).expect(200);
    expect(page.text).to.include('Underpaid').and.include('12.50 of 25.00');
    const l = await env.rt.db('links').where({ id: link.key }).first();
    expect([Number(l.held_count), Number(l.paid_count)]).to.deep.equal([0, 0]);
  });

  it('late: a transfer after the end is recorded as paid_late, counts nothing, and the customer is told', async function () {
    this.timeout(90_000);
    const link = await newLink(2500, 1);
    const s = await begin(link);
    await later(31 * MINUTE);
    await scan();
    expect((await paymentRow(s.payment.id)).status).to.equal('failed');
    const tx = await chain.transfer(usdt, 1, s.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    await scan();
    expect((await paymentRow(s.payment.id)).status).to.equal('failed');
    const late = await events('payment.paid_late', s.payment.id);
    expect(late, 'reported once').to.have.length(1);
    expect(late[0]).to.deep.include({ amountReceived: 2500, txHashes: [tx] });
    expect(Number((await env.rt.db('links').where({ id: link.key }).first()).paid_count)).to.equal(0);
    const page = await supertest(env.app).get(`/p/provider-crypto-evm/pay/${s.session.id}`).expect(200);
    expect(page.text).to.include('Arrived late');
  });

  it('a transfer to another checkout’s address never pays this one', async function () {
    this.timeout(90_000);
    const link = await newLink(2500);
    const mine = await begin(link);
    const other = await begin(link);
    await chain.transfer(usdt, 1, other.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect((await paymentRow(other.payment.id)).status).to.equal('paid');
    expect((await paymentRow(mine.payment.id)).status).to.equal('pending');
    expect((await sessionData(mine.session.id)).transfers).to.deep.equal([]);
  });

  /** `send` seen on its way, then a reorg before its confirmations: it disappears from the checkout and pays nothing. */
  const vanishesBeforeConfirmation = async (s: { session: { id: string }; payment: { id: string } }, send: () => Promise<unknown>) => {
    const snap = await chain.snapshot();
    await send();
    await scan();
    expect((await sessionData(s.session.id)).pending).to.have.length(1);
    await chain.revert(snap);
    await chain.mine(CONFIRMATIONS + 1);
    await scan();
    const d = await sessionData(s.session.id);
    expect([d.pending, d.transfers]).to.deep.equal([[], []]);
    expect((await paymentRow(s.payment.id)).status).to.equal('pending');
  };

  it('a reorg before confirmation: the transfer seen on its way disappears and pays nothing', async function () {
    this.timeout(90_000);
    const s = await begin(await newLink(2500));
    await vanishesBeforeConfirmation(s, () => chain.transfer(usdt, 1, s.data.address, 25_000_000n));
  });

  it('a reorg deeper than the confirmations: the paid payment whose transaction vanished is flagged for the merchant (after two passes)', async function () {
    this.timeout(90_000);
    const s = await begin(await newLink(2500));
    const snap = await chain.snapshot();
    const tx = await chain.transfer(usdt, 1, s.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect((await paymentRow(s.payment.id)).status).to.equal('paid');
    // The chain forgets it: another branch, longer than the one that carried the transaction.
    await chain.revert(snap);
    await chain.mine(CONFIRMATIONS + 4);
    await scan();
    expect((await paymentRow(s.payment.id)).dispute_status, 'one pass may be a lagging node').to.equal(null);
    await scan();
    const row = await paymentRow(s.payment.id);
    expect(row.dispute_status).to.equal('chain_reorg');
    const [disputed] = await events('payment.disputed', s.payment.id);
    expect(disputed).to.deep.include({ status: 'chain_reorg', amount: 2500 });
    const d = await sessionData(s.session.id);
    expect([d.transfers.length, d.vanished.map((t: { txHash: string }) => t.txHash)]).to.deep.equal([0, [tx]]);
    const page = await owner.agent.get(`/app/payments/${s.payment.id}`).expect(200);
    expect(page.text).to.include('Disputed').and.include('chain reorg');
    // Control: a transaction still on the chain is never flagged.
    const kept = await begin(await newLink(2500));
    await chain.transfer(usdt, 2, kept.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    await scan();
    await scan();
    expect((await paymentRow(kept.payment.id)).dispute_status).to.equal(null);
  });

  /** The eth_getLogs ranges asked since `from` (index in the proxy log), as [from, to] pairs. */
  const ranges = (from: number) =>
    proxy.log
      .slice(from)
      .filter((l) => l.method === 'eth_getLogs' && !l.failed)
      .map((l) => {
        const p = (l.params as { fromBlock: string; toBlock: string }[])[0];
        return [Number(p.fromBlock), Number(p.toBlock)];
      });
  /** The last block the watcher recorded (before its first scan: the one below the configured start). */
  const cursor = async () => {
    const row = (await env.rt.db('plugin_records').where({ plugin_id: 'provider-crypto-evm', collection: 'cursors', unique_key: 'testnet' }).first()) as { data: string } | undefined;
    return row ? (JSON.parse(row.data).block as number) : startBlock - 1;
  };

  it('an RPC that fails intermittently (503s, dropped connections): retried with backoff, every block read once in order, paid', async function () {
    this.timeout(120_000);
    const s = await begin(await newLink(2500));
    const mark = proxy.log.length;
    const before = await cursor();
    await chain.mine(5);
    const tx = await chain.transfer(usdt, 1, s.data.address, 25_000_000n);
    await chain.mine(6 + CONFIRMATIONS);
    proxy.fail('eth_getLogs', 1, '503');
    proxy.fail('eth_getLogs', 1, 'drop', 1);
    proxy.fail('eth_blockNumber', 1, 'drop');
    proxy.fail('eth_getBlockByNumber', 2, '503');
    await scan();
    proxy.heal();
    expect(proxy.log.slice(mark).filter((l) => l.failed).length, 'the faults happened').to.be.at.least(4);
    expect((await paymentRow(s.payment.id)).status).to.equal('paid');
    expect(JSON.parse((await paymentRow(s.payment.id)).payment_method).txHashes).to.deep.equal([tx]);
    // The confirmed ranges asked run back to back from the old cursor to the new one: none skipped, none read twice.
    const after = await cursor();
    expect(after).to.equal((await chain.blockNumber()) - CONFIRMATIONS + 1);
    let next = before + 1;
    for (const [from, to] of ranges(mark).filter(([from]) => from <= after)) {
      expect(from).to.equal(next);
      next = to + 1;
    }
    expect(next - 1).to.equal(after);
  });

  it('the watcher stopped mid-range (the RPC gone for good) resumes from its last recorded block in another process, and misses nothing', async function () {
    this.timeout(120_000);
    const s = await begin(await newLink(2500));
    const before = await cursor();
    await chain.mine(9); // > 2 chunks of 4 blocks before the transfer
    const tx = await chain.transfer(usdt, 1, s.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS + 4);
    const mark = proxy.log.length;
    // The first chunk goes through, then eth_getLogs fails past every retry: the scan job fails.
    proxy.fail('eth_getLogs', 100, '503', 1);
    await scan();
    const stuck = await cursor();
    expect(stuck, 'one chunk recorded').to.equal(before + 4);
    expect((await paymentRow(s.payment.id)).status).to.equal('pending');
    const job = await env.rt.db('jobs').where({ kind: SCAN }).orderBy('id', 'desc').first();
    expect(job.last_error).to.match(/eth_getLogs/);
    proxy.heal();
    // "Restart": another runtime on the same database runs the next scan.
    const sibling = await env.sibling();
    try {
      await sibling.jobs.enqueue(sibling.db, SCAN, {});
      await sibling.jobs.drain();
    } finally {
      await sibling.close();
    }
    expect((await paymentRow(s.payment.id)).status).to.equal('paid');
    expect(JSON.parse((await paymentRow(s.payment.id)).payment_method).txHashes).to.deep.equal([tx]);
    const asked = ranges(mark);
    expect(asked[0][0]).to.equal(before + 1);
    // Each successful confirmed range starts right after the previous one recorded (the first chunk was re-read: none).
    const starts = asked.map(([from]) => from);
    expect(starts.slice(0, 3)).to.deep.equal([before + 1, before + 5, before + 9]);
  });

  it('scans once across processes: two runtimes scanning at once read each block range once, and both see the payment', async function () {
    this.timeout(120_000);
    const s = await begin(await newLink(2500));
    const before = await cursor();
    await chain.mine(12);
    await chain.transfer(usdt, 1, s.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS + 12);
    const mark = proxy.log.length;
    // The other process logs when it finds a scan running: the two really overlapped.
    const lines: string[] = [];
    const one = await env.sibling({ log: createLogger('info', (l) => lines.push(l)) });
    const two = await env.sibling({ log: createLogger('info', (l) => lines.push(l)) });
    try {
      await Promise.all([one, two, one, two].map(async (rt) => {
        await rt.jobs.enqueue(rt.db, SCAN, {});
        await rt.jobs.drain();
      }));
    } finally {
      await one.close();
      await two.close();
    }
    expect((await paymentRow(s.payment.id)).status).to.equal('paid');
    expect(await events('payment.succeeded', s.payment.id)).to.have.length(1);
    const after = await cursor();
    const confirmed = ranges(mark).filter(([from]) => from <= after);
    expect(confirmed.length, 'several chunks were read').to.be.at.least(3);
    // Every confirmed range once, back to back: no two scans read the same blocks.
    let next = before + 1;
    for (const [from, to] of confirmed) {
      expect(from).to.equal(next);
      next = to + 1;
    }
    expect(next - 1).to.equal(after);
    // Control: the scans did overlap (one found the lease taken), so the check above could catch a double read.
    expect(lines.filter((l) => l.includes('another process is scanning')).length, 'a scan was skipped because another held the lease').to.be.at.least(1);
  });

  it('holds on a limit-3 link: 10 concurrent checkouts, 3 hold a slot; a late transfer on the full link is flagged, never counted', async function () {
    this.timeout(120_000);
    const link = await newLink(2500, 3);
    const tries = await Promise.allSettled(Array.from({ length: 10 }, () => begin(link)));
    const started = tries.filter((t) => t.status === 'fulfilled').map((t) => (t as PromiseFulfilledResult<Awaited<ReturnType<typeof begin>>>).value);
    expect(started).to.have.length(3);
    for (const t of tries.filter((x) => x.status === 'rejected')) expect((t as PromiseRejectedResult).reason).to.include({ code: 'spots_held' });
    expect(new Set(started.map((s) => s.data.address)).size).to.equal(3);
    // Two pay; the third lets its timer run out, and its slot goes to a newcomer who pays.
    for (const s of started.slice(0, 2)) await chain.transfer(usdt, 1, s.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    await later(31 * MINUTE);
    await scan();
    await env.rt.jobs.enqueue(env.rt.db, 'links.release_holds', {});
    await env.rt.jobs.drain();
    const newcomer = await begin(link);
    await chain.transfer(usdt, 2, newcomer.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect(await Promise.all([...started, newcomer].map(async (s) => (await paymentRow(s.payment.id)).status))).to.deep.equal(['paid', 'paid', 'failed', 'paid']);
    // The one who ran out of time pays now, on a full link: recorded as late, not counted.
    const late = started[2];
    await chain.transfer(usdt, 3, late.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect(await events('payment.paid_late', late.payment.id)).to.have.length(1);
    const l = await env.rt.db('links').where({ id: link.key }).first();
    expect([Number(l.paid_count), Number(l.held_count), Boolean(l.active)]).to.deep.equal([3, 0, false]);
  });

  it('sent in time, confirmed after the slot lapsed on a link that filled meanwhile: not counted, the payment flagged, paid_late', async function () {
    this.timeout(120_000);
    const link = await newLink(2500, 1);
    const slow = await begin(link);
    const tx = await chain.transfer(usdt, 1, slow.data.address, 25_000_000n); // 1 of 3 confirmations at the end
    await scan();
    await later(31 * MINUTE);
    await env.rt.jobs.enqueue(env.rt.db, 'links.release_holds', {});
    await env.rt.jobs.drain();
    const quick = await begin(link);
    await chain.transfer(usdt, 2, quick.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect((await paymentRow(quick.payment.id)).status).to.equal('paid');
    const row = await paymentRow(slow.payment.id);
    expect([row.status, row.failure_code]).to.deep.equal(['failed', 'limit_refund_failed']);
    const [late] = await events('payment.paid_late', slow.payment.id);
    expect(late).to.deep.include({ amountReceived: 2500, txHashes: [tx] });
    const l = await env.rt.db('links').where({ id: link.key }).first();
    expect([Number(l.paid_count), Number(l.held_count)]).to.deep.equal([1, 0]);
    const page = await supertest(env.app).get(`/p/provider-crypto-evm/pay/${slow.session.id}`).expect(200);
    expect(page.text).to.include('Arrived late');
  });

  it('streams the tracker as server-sent events', async function () {
    this.timeout(15_000);
    const s = await begin(await newLink(2500));
    const res = await supertest(env.app)
      .get(`/p/provider-crypto-evm/pay/${s.session.id}/events`)
      .buffer(true)
      .parse((r, done) => {
        let text = '';
        r.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.includes('\n\n')) (r as unknown as { destroy(): void }).destroy();
        });
        r.on('close', () => done(null, text));
        r.on('end', () => done(null, text));
      })
      .catch((e) => e.response ?? { body: '' });
    expect(String(res.body)).to.match(/^event: tracker\ndata: .*Waiting for your transfer/);
  });

  it('hands an address that never received anything out again after its watch window (gap limit), never one that did', async function () {
    this.timeout(120_000);
    // A merchant of its own (another wallet), so its indexes start at 0.
    const owner = await signUp(env.app, { name: 'Kiln Studio' });
    const kiln = (await env.rt.services.merchants.getByHandle(owner.handle))!;
    await env.rt.services.providers.update(kiln.key, 'crypto-evm', { enabled: true, settings: { xpub: HDKey.fromMasterSeed(randomBytes(32)).derive("m/44'/60'/0'").publicExtendedKey, tokens: ['testnet:usdt'] } });
    const link = await env.rt.services.links.create(kiln, { type: 'amount', name: 'Glaze night', amount: 2500, currency: 'USD', payment_limit: null });
    const start = async () => {
      const r = await env.rt.services.checkout.start(kiln, link, { amount: 2500, currency: 'USD', name: 'Bo', email: 'bo@example.test', provider: 'crypto-evm' });
      return { ...r, data: await sessionData(r.session.id) };
    };
    const unused = await start();
    const used = await start();
    expect([unused.data.index, used.data.index]).to.deep.equal([0, 1]);
    await chain.transfer(usdt, 1, used.data.address, 1_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    await later(31 * MINUTE);
    await scan();
    expect((await start()).data.index, 'within the watch window: a new index').to.equal(2);
    await later(25 * 60 * MINUTE);
    await scan();
    const again = await start();
    expect([again.data.index, again.data.address]).to.deep.equal([0, unused.data.address]);
    expect((await start()).data.index, 'an address that received something is never handed out again').to.equal(3);
    // The reused address pays its new checkout only.
    await chain.transfer(usdt, 2, again.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect((await paymentRow(again.payment.id)).status).to.equal('paid');
    expect((await paymentRow(unused.payment.id)).status).to.equal('failed');
    expect(await events('payment.paid_late', unused.payment.id)).to.deep.equal([]);
  });

  it('plugin store replaceIf: compare-and-set, exact (case and trailing spaces count), one winner of many', async () => {
    const store = createPluginStore(env.rt.db, env.clock, 'test-cas', { keyOf: async () => null, publicIdsOf: async () => new Map() });
    const rec = (await store.insertOnce('leases', 'x', { merchantId: null, data: { holder: 'abc', until: 1 } }))!;
    expect(await store.replaceIf('leases', rec.id, { holder: 'ABC', until: 1 }, { holder: 'me', until: 2 }), 'case differs').to.equal(false);
    expect(await store.replaceIf('leases', rec.id, { holder: 'abc ', until: 1 }, { holder: 'me', until: 2 }), 'trailing space').to.equal(false);
    const wins = await Promise.all(Array.from({ length: 8 }, (_, i) => store.replaceIf('leases', rec.id, { holder: 'abc', until: 1 }, { holder: `w${i}`, until: 2 })));
    expect(wins.filter(Boolean)).to.have.length(1);
    const now = (await store.get<{ holder: string; until: number }>('leases', rec.id))!;
    expect(now.data.holder).to.equal(`w${wins.indexOf(true)}`);
    expect(await createPluginStore(env.rt.db, env.clock, 'other-plugin', { keyOf: async () => null, publicIdsOf: async () => new Map() }).replaceIf('leases', rec.id, now.data, { holder: 'thief', until: 3 }), 'another plugin’s record').to.equal(false);
  });

  it('lists the merchant’s crypto checkouts on the dashboard, found by verification code, and no one else’s', async function () {
    this.timeout(90_000);
    const s = await begin(await newLink(2500));
    const tx = await chain.transfer(usdt, 1, s.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    const found = await owner.agent.get(`/app/p/provider-crypto-evm/?code=${s.data.code.replace('-', '').toLowerCase()}`).expect(200);
    expect(found.text).to.include(s.data.code).and.include(s.payment.id).and.include(s.data.address).and.include(tx.slice(0, 10)).and.include('25.00 of 25.00 USD');
    expect(found.text.match(/data-label="Code"/g)?.length, 'only that checkout').to.equal(1);
    const stranger = await signUp(env.app, { name: 'Someone Else' });
    const theirs = await stranger.agent.get(`/app/p/provider-crypto-evm/?code=${s.data.code}`).expect(200);
    expect(theirs.text).to.not.include(s.data.address);
    expect(theirs.text).to.include('No checkout with that code');
  });

  it('the verification code is on the payment: the receipt, the merchant’s payment page and the API show it', async function () {
    this.timeout(90_000);
    const s = await begin(await newLink(2500));
    expect((await paymentRow(s.payment.id)).support_reference, 'recorded when the checkout starts').to.equal(s.data.code);
    const waiting = await supertest(env.app).get(`/receipt/${s.payment.id}`).expect(200);
    expect(waiting.text).to.include('Verification code').and.include(s.data.code);
    await chain.transfer(usdt, 1, s.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    const receipt = await supertest(env.app).get(`/receipt/${s.payment.id}`).expect(200);
    expect(receipt.text).to.include('Payment successful').and.include(s.data.code);
    const page = await owner.agent.get(`/app/payments/${s.payment.id}`).expect(200);
    expect(page.text).to.include('Verification code').and.include(s.data.code);
    const { secret } = await env.rt.services.apiKeys.create(shop, { name: 'support' });
    const api = await supertest(env.app).get(`/api/v1/payments/${s.payment.id}`).set('Authorization', `Bearer ${secret}`).expect(200);
    expect(api.body).to.deep.include({ support_reference: s.data.code, outcome: null });
    // A card payment has none.
    const other = await supertest(env.app).get(`/api/v1/payments?limit=100`).set('Authorization', `Bearer ${secret}`).expect(200);
    expect(other.body.data.every((p: { support_reference: string | null }) => p.support_reference === null || /^[2-9A-HJ-NP-Z]{3}-[2-9A-HJ-NP-Z]{3}$/.test(p.support_reference))).to.equal(true);
  });

  it('a support reference that is not short and display-safe is refused', async () => {
    const s = await begin(await newLink(2500));
    const services = env.rt.plugins.checkoutFor('provider-crypto-evm');
    for (const bad of ['', 'has space', '<b>x</b>', 'x'.repeat(33)]) {
      const err = await services.setSupportReference(s.payment.id, bad).then(() => null, (e) => e);
      expect(err, JSON.stringify(bad)).to.include({ code: 'invalid_reference' });
    }
    expect((await paymentRow(s.payment.id)).support_reference, 'unchanged').to.equal(s.data.code);
  });

  it('the countdown is the merchant’s (Settings → Payments, 5 to 180 minutes; 30 by default), refused by field otherwise', async () => {
    const owner2 = await signUp(env.app, { name: 'Quay Bakery' });
    const bakery = (await env.rt.services.merchants.getByHandle(owner2.handle))!;
    const page = await owner2.agent.get('/app/settings/payments').expect(200);
    const csrf = csrfFrom(page.text);
    // A wallet of its own: its addresses must not be the shop's, whose checkouts the watcher is still watching.
    const xpub = HDKey.fromMasterSeed(randomBytes(32)).derive("m/44'/60'/0'").publicExtendedKey;
    const post = (minutes: string) => owner2.agent.post('/app/settings/payments/crypto-evm').type('form').send({ _csrf: csrf, enabled: ['0', '1'], 'settings.xpub': xpub, 'settings.tokens': 'testnet:usdt', 'settings.holdMinutes': minutes });
    for (const [bad, message] of [['4', /At least 5 minutes/], ['181', /At most 180 minutes/], ['ten', /whole minutes/], ['12.5', /whole minutes/]] as const) {
      const res = await post(bad).expect(422);
      expect(fieldError(res.text, 'crypto-evm-holdMinutes'), bad).to.match(message);
      expect(res.text, 'what was typed is shown again').to.include(`value="${bad}"`);
    }
    expect(await env.rt.services.providers.get(bakery.key, 'crypto-evm').then((p) => p.enabled), 'nothing saved').to.equal(false);
    await post('').expect(303);
    const link = await env.rt.services.links.create(bakery, { type: 'amount', name: 'Loaf', amount: 500, currency: 'USD', payment_limit: 5 });
    const start = () => env.rt.services.checkout.start(bakery, link, { amount: 500, currency: 'USD', name: 'Ana', email: 'ana@example.test', provider: 'crypto-evm' });
    const byDefault = await start();
    expect(byDefault.session.expiresAt.getTime() - env.clock.now().getTime(), 'default 30 minutes').to.equal(30 * MINUTE);
    await post('10').expect(303);
    expect((await env.rt.services.providers.get(bakery.key, 'crypto-evm')).settings.holdMinutes).to.equal(10);
    const quick = await start();
    expect(quick.session.expiresAt.getTime() - env.clock.now().getTime()).to.equal(10 * MINUTE);
    const page2 = await owner2.agent.get('/app/settings/payments').expect(200);
    expect(page2.text).to.include('Time to pay (minutes)').and.include('value="10"');
    // The pay page counts down from the merchant's time, and the hold on the limited link lasts as long.
    const pay = await supertest(env.app).get(`/p/provider-crypto-evm/pay/${quick.session.id}`).expect(200);
    expect(pay.text).to.include('data-seconds="600"');
    const hold = await env.rt.db('checkout_sessions').where({ public_id: quick.session.id }).first();
    expect(new Date(hold.expires_at).getTime() - env.clock.now().getTime()).to.equal(10 * MINUTE);
    // Another merchant's countdown is untouched.
    const ours = await begin(await newLink(2500));
    expect(new Date(ours.session.expiresAt).getTime() - env.clock.now().getTime()).to.equal(30 * MINUTE);
  });

  /** An underpaid checkout (12.50 of 25.00 sent, then the time ran out) on `link`. */
  const underpaid = async (link: Link, from = 1) => {
    const s = await begin(link);
    await chain.transfer(usdt, from, s.data.address, 12_500_000n);
    return s;
  };
  const endAll = async () => {
    await chain.mine(CONFIRMATIONS);
    await scan();
    await later(31 * MINUTE);
    await scan();
  };
  const decide = async (account: Account, paymentId: string, decision: string) => {
    const page = await account.agent.get(`/app/payments/${paymentId}`).expect(200);
    return account.agent.post(`/app/payments/${paymentId}/outcome`).type('form').send({ _csrf: csrfFrom(page.text), decision });
  };

  it('underpaid, accepted by the merchant: paid for what arrived, counted on the link, payment.succeeded; the customer is told', async function () {
    this.timeout(90_000);
    const link = await newLink(2500, 2);
    const s = await underpaid(link);
    await endAll();
    const page = await owner.agent.get(`/app/payments/${s.payment.id}`).expect(200);
    expect(page.text).to.include('Needs your decision').and.include('sent $12.50 of $25.00').and.include('value="accept"').and.include('value="dismiss"');
    const receipt = await supertest(env.app).get(`/receipt/${s.payment.id}`).expect(200);
    expect(receipt.text).to.include('Underpaid.').and.include(s.data.code).and.not.include('You were not charged');
    const res = await decide(owner, s.payment.id, 'accept');
    expect(res.status).to.equal(303);
    const row = await paymentRow(s.payment.id);
    expect([row.status, Number(row.amount), row.outcome_resolution]).to.deep.equal(['paid', 1250, 'accepted']);
    const l = await env.rt.db('links').where({ id: link.key }).first();
    expect([Number(l.paid_count), Number(l.revenue)]).to.deep.equal([1, 1250]);
    expect(await events('payment.succeeded', s.payment.id)).to.have.length(1);
    expect((await owner.agent.get(`/app/payments/${s.payment.id}`).expect(200)).text).to.include('You accepted it: the payment is paid for what arrived ($12.50)').and.not.include('value="accept"');
    expect((await supertest(env.app).get(`/receipt/${s.payment.id}`).expect(200)).text).to.include('Payment successful').and.include('accepted it');
    expect((await supertest(env.app).get(`/p/provider-crypto-evm/pay/${s.session.id}`).expect(200)).text).to.include('Accepted by Harbour Yoga');
    // Decided once.
    expect((await decide(owner, s.payment.id, 'dismiss')).status).to.equal(409);
    expect((await decide(owner, s.payment.id, 'maybe')).status, 'not a decision').to.equal(422);
  });

  it('underpaid, settled off-line: recorded, nothing counted; the customer is told', async function () {
    this.timeout(90_000);
    const link = await newLink(2500, 2);
    const s = await underpaid(link);
    await endAll();
    expect((await decide(owner, s.payment.id, 'dismiss')).status).to.equal(303);
    const row = await paymentRow(s.payment.id);
    expect([row.status, row.outcome_resolution]).to.deep.equal(['failed', 'dismissed']);
    expect(Number((await env.rt.db('links').where({ id: link.key }).first()).paid_count)).to.equal(0);
    const page = await owner.agent.get(`/app/payments/${s.payment.id}`).expect(200);
    expect(page.text).to.include('Settled off-line').and.not.include('value="accept"');
    expect((await supertest(env.app).get(`/receipt/${s.payment.id}`).expect(200)).text).to.include('Settled with the merchant');
    expect((await supertest(env.app).get(`/p/provider-crypto-evm/pay/${s.session.id}`).expect(200)).text).to.include('Settled with Harbour Yoga');
  });

  it('a late payment on a full link is never accepted over the limit: it stays flagged, and the page says why', async function () {
    this.timeout(120_000);
    const link = await newLink(2500, 1);
    const late = await begin(link);
    await later(31 * MINUTE);
    await scan();
    const paid = await begin(link);
    await chain.transfer(usdt, 2, paid.data.address, 25_000_000n);
    await chain.transfer(usdt, 1, late.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect((await paymentRow(paid.payment.id)).status).to.equal('paid');
    const flagged = await paymentRow(late.payment.id);
    expect([flagged.status, flagged.outcome, Number(flagged.amount_received)]).to.deep.equal(['failed', 'paid_late', 2500]);
    const res = await decide(owner, late.payment.id, 'accept');
    expect(res.status).to.equal(409);
    expect(res.text).to.include('payment limit is reached').and.include('stays flagged');
    const row = await paymentRow(late.payment.id);
    expect([row.status, row.outcome_resolution, Number(row.amount)], 'nothing half-written').to.deep.equal(['failed', null, 2500]);
    const l = await env.rt.db('links').where({ id: link.key }).first();
    expect(Number(l.paid_count)).to.equal(1);
    expect(await events('payment.succeeded', late.payment.id)).to.have.length(0);
  });

  it('accepting under concurrency: two underpaid payments for the last spot, one wins (control: without a limit both count)', async function () {
    this.timeout(180_000);
    const limited = await newLink(2500, 2);
    const open = await newLink(2500);
    const ones = [await underpaid(limited, 1), await underpaid(limited, 2)];
    const twos = [await underpaid(open, 3), await underpaid(open, 1)];
    await endAll();
    // A customer pays in full meanwhile: one spot is left for the two underpaid ones.
    const full = await begin(limited);
    await chain.transfer(usdt, 2, full.data.address, 25_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    expect((await paymentRow(full.payment.id)).status).to.equal('paid');
    const flagged = await Promise.all([...ones, ...twos].map(async (s) => (await paymentRow(s.payment.id)).outcome));
    expect(flagged).to.deep.equal(['underpaid', 'underpaid', 'underpaid', 'underpaid']);
    const race = await Promise.all(ones.map((s) => env.rt.services.checkout.resolveOutcome(shop.key, s.payment.id, 'accept').then(() => 'won', (e) => e.code)));
    expect(race.sort()).to.deep.equal(['limit_reached', 'won']);
    const l = await env.rt.db('links').where({ id: limited.key }).first();
    expect(Number(l.paid_count)).to.equal(2);
    const control = await Promise.all(twos.map((s) => env.rt.services.checkout.resolveOutcome(shop.key, s.payment.id, 'accept').then(() => 'won', (e) => e.code)));
    expect(control).to.deep.equal(['won', 'won']);
    expect(Number((await env.rt.db('links').where({ id: open.key }).first()).paid_count)).to.equal(2);
  });

  it('overpaid: accept keeps the excess and changes nothing else; the API shows the outcome', async function () {
    this.timeout(90_000);
    const s = await begin(await newLink(2500));
    await chain.transfer(usdt, 1, s.data.address, 30_000_000n);
    await chain.mine(CONFIRMATIONS);
    await scan();
    const page = await owner.agent.get(`/app/payments/${s.payment.id}`).expect(200);
    expect(page.text).to.include('Overpaid').and.include('overpaid by $5.00');
    const { secret } = await env.rt.services.apiKeys.create(shop, { name: 'outcomes' });
    const before = await supertest(env.app).get(`/api/v1/payments/${s.payment.id}`).set('Authorization', `Bearer ${secret}`).expect(200);
    expect(before.body.outcome).to.deep.equal({ kind: 'overpaid', amount_received: 3000, resolution: null, resolved_at: null });
    expect((await decide(owner, s.payment.id, 'accept')).status).to.equal(303);
    const row = await paymentRow(s.payment.id);
    expect([row.status, Number(row.amount), row.outcome_resolution]).to.deep.equal(['paid', 2500, 'accepted']);
    expect(await events('payment.succeeded', s.payment.id)).to.have.length(1);
    const after = await supertest(env.app).get(`/api/v1/payments/${s.payment.id}`).set('Authorization', `Bearer ${secret}`).expect(200);
    expect(after.body.outcome).to.deep.include({ kind: 'overpaid', resolution: 'accepted' });
  });

  it('the API decides too: POST /payments/:id/outcome, 422 by the field, 409 on a full link or when decided', async function () {
    this.timeout(90_000);
    const link = await newLink(2500, 1);
    const s = await underpaid(link);
    await endAll();
    const { secret } = await env.rt.services.apiKeys.create(shop, { name: 'decisions' });
    const post = (id: string, body: unknown) => supertest(env.app).post(`/api/v1/payments/${id}/outcome`).set('Authorization', `Bearer ${secret}`).send(body as object);
    const bad = await post(s.payment.id, { decision: 'keep' }).expect(422);
    expect(bad.headers['content-type']).to.match(/problem\+json/);
    expect(bad.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['decision']);
    const ok = await post(s.payment.id, { decision: 'accept' }).expect(200);
    expect(ok.body).to.deep.include({ status: 'paid', amount: 1250 });
    expect(ok.body.outcome).to.deep.include({ kind: 'underpaid', amount_received: 1250, resolution: 'accepted' });
    expect((await post(s.payment.id, { decision: 'dismiss' }).expect(409)).body.code).to.equal('outcome_resolved');
    // A payment nothing odd arrived for has nothing to decide.
    const plain = await begin(await newLink(2500));
    expect((await post(plain.payment.id, { decision: 'accept' }).expect(409)).body.code).to.equal('no_outcome');
  });

  it('only owners and admins decide; another merchant’s payment is not found', async function () {
    this.timeout(90_000);
    const s = await underpaid(await newLink(2500));
    await endAll();
    const stranger = await signUp(env.app, { name: 'Elsewhere' });
    const page = await stranger.agent.get('/app').expect(200);
    await stranger.agent.post(`/app/payments/${s.payment.id}/outcome`).type('form').send({ _csrf: csrfFrom(page.text), decision: 'accept' }).expect(404);
    // A viewer of the shop sees the payment and what arrived, without the buttons, and cannot post.
    const invited = await owner.agent.post('/app/settings/team/invites').type('form').send({ _csrf: owner.csrf, role: 'viewer', amount_cap: '', email: `viewer-${Date.now()}@example.test` }).expect(201);
    const viewer = supertest.agent(env.app);
    const join = new URL(/id="invite-link">([^<]+)</.exec(invited.text)![1]).pathname;
    const form = await viewer.get(join).expect(200);
    await viewer.post(join).type('form').send({ _csrf: csrfFrom(form.text), name: 'Vera Viewer', password: 'a long team password' }).expect(303);
    const seen = await viewer.get(`/app/payments/${s.payment.id}`).expect(200);
    expect(seen.text).to.include('Needs your decision').and.include('Owners and admins decide').and.not.include('value="accept"');
    await viewer.post(`/app/payments/${s.payment.id}/outcome`).type('form').send({ _csrf: csrfFrom(seen.text), decision: 'accept' }).expect(403);
    expect((await paymentRow(s.payment.id)).outcome_resolution).to.equal(null);
  });

  describe('native coin (value transfers, read from blocks’ transactions)', () => {
    let shop2: Merchant;
    let link: Link;
    before(async () => {
      const o = await signUp(env.app, { name: 'Gnosis Garden' });
      shop2 = (await env.rt.services.merchants.getByHandle(o.handle))!;
      const xpub = HDKey.fromMasterSeed(randomBytes(32)).derive("m/44'/60'/0'").publicExtendedKey;
      await env.rt.services.providers.update(shop2.key, 'crypto-evm', { enabled: true, settings: { xpub, tokens: ['testnet:xdai', 'testnet:usdt'] } });
      link = await env.rt.services.links.create(shop2, { type: 'amount', name: 'Seeds', amount: 2500, currency: 'USD', payment_limit: null });
    });
    const start = async () => {
      const r = await env.rt.services.checkout.start(shop2, link, { amount: 2500, currency: 'USD', name: 'Ana', email: 'ana@example.test', provider: 'crypto-evm' });
      return { ...r, data: (await sessionData(r.session.id)) as { address: Hex } };
    };

    it('the pay page offers it with a value-transfer QR; an exact transfer is confirming, then paid with its hash', async function () {
      this.timeout(90_000);
      const s = await start();
      const page = await supertest(env.app).get(`/p/provider-crypto-evm/pay/${s.session.id}?t=testnet:xdai`).expect(200);
      expect(page.text).to.include('25.00 XDAI').and.include('its own coin');
      const tx = await chain.sendValue(1, s.data.address, 25n * 10n ** 18n);
      await scan();
      expect((await paymentRow(s.payment.id)).status).to.equal('pending');
      expect((await supertest(env.app).get(`/p/provider-crypto-evm/pay/${s.session.id}`).expect(200)).text).to.include('1 of 3 confirmations');
      await chain.mine(CONFIRMATIONS - 1);
      await scan();
      const row = await paymentRow(s.payment.id);
      expect(row.status).to.equal('paid');
      expect(JSON.parse(row.payment_method)).to.deep.include({ type: 'crypto', brand: 'xdai', network: 'testnet', txHashes: [tx] });
    });

    it('a native transfer and a token transfer add up; one to another address, or of a coin the merchant does not accept, pays nothing', async function () {
      this.timeout(90_000);
      const s = await start();
      const other = await start();
      await chain.sendValue(2, other.data.address, 10n ** 18n);
      const a = await chain.sendValue(1, s.data.address, 10n * 10n ** 18n);
      const b = await chain.transfer(usdt, 1, s.data.address, 15_000_000n);
      await chain.mine(CONFIRMATIONS);
      await scan();
      const row = await paymentRow(s.payment.id);
      expect(row.status).to.equal('paid');
      expect(JSON.parse(row.payment_method).txHashes).to.have.members([a, b]);
      expect((await sessionData(other.session.id)).transfers).to.have.length(1);
      expect((await paymentRow(other.payment.id)).status).to.equal('pending');
      // The shop (tokens only) never counts the native coin.
      const t = await begin(await newLink(2500));
      await chain.sendValue(3, t.data.address, 25n * 10n ** 18n);
      await chain.mine(CONFIRMATIONS);
      await scan();
      expect((await sessionData(t.session.id)).transfers).to.deep.equal([]);
      expect((await paymentRow(t.payment.id)).status).to.equal('pending');
    });

    it('a native transfer a reorg removes before confirmation disappears and pays nothing', async function () {
      this.timeout(90_000);
      const s = await start();
      await vanishesBeforeConfirmation(s, () => chain.sendValue(1, s.data.address, 25n * 10n ** 18n));
    });
  });

  it('answers 404 for an unknown checkout', async () => {
    await supertest(env.app).get('/p/provider-crypto-evm/pay/cs_0000000000000000000000').expect(404);
    await supertest(env.app).get('/p/provider-crypto-evm/pay/nope').expect(404);
  });
});

describe('provider-crypto-evm pay page in Chromium at 390 px', function () {
  this.timeout(300_000);
  const browser = useBrowser();
  let t: Awaited<ReturnType<typeof testChain>>;
  let env: ServedEnv;
  let shop: Merchant;
  let tab: TrackedPage;

  before(async () => {
    t = await testChain({ maxBlockRange: 100 });
    env = await serve(TARGETS[0], { env: { PAYLINK_PLUGIN_PROVIDER_CRYPTO_EVM: JSON.stringify(t.config) } });
    const owner = await signUp(env.app, { name: 'Harbour Yoga' });
    shop = (await env.rt.services.merchants.getByHandle(owner.handle))!;
    await env.rt.services.providers.update(shop.key, 'crypto-evm', { enabled: true, settings: { xpub: TEST_XPUB, tokens: ['testnet:usdt', 'testnet:dai', 'testnet:xdai'] } });
    tab = await browser().newPage({ viewport: PHONE });
  });
  after(async () => {
    await tab?.close();
    await env?.close();
    await t?.proxy.close();
    await t?.chain.close();
  });

  const scan = async () => {
    await env.rt.jobs.enqueue(env.rt.db, SCAN, {});
    await env.rt.jobs.drain();
  };
  const begin = async () => {
    const link = await env.rt.services.links.create(shop, { type: 'amount', name: 'Sunrise class', amount: 2500, currency: 'USD', payment_limit: null });
    const r = await env.rt.services.checkout.start(shop, link, { amount: 2500, currency: 'USD', name: 'Ana', email: 'ana@example.test', provider: 'crypto-evm' });
    const rec = (await env.rt.db('plugin_records').where({ plugin_id: 'provider-crypto-evm', collection: 'sessions', unique_key: r.session.id }).first()) as { data: string };
    return { ...r, url: `${env.origin}/p/provider-crypto-evm/pay/${r.session.id}`, address: JSON.parse(rec.data).address as Hex };
  };
  /** Shows the page, checks it fits 390 px and behaved, and saves a screenshot. */
  const look = async (name: string, text: RegExp) => {
    await tab.page.locator('#tracker').filter({ hasText: text }).waitFor();
    const overflow = (await tab.page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
    expect(overflow, `${name}: nothing wider than the phone`).to.be.at.most(0);
    await tab.screenshot(`crypto-${name}-390`);
    tab.assertClean();
  };

  it('waiting → confirming (live, without reload) → paid; the copy buttons and the QR are there', async () => {
    const s = await begin();
    await tab.page.goto(s.url);
    // The native coin, chosen: a value transfer (no contract), its own QR.
    await tab.page.goto(`${s.url}?t=testnet:xdai`);
    await look('waiting-native', /Waiting for your transfer/);
    expect(await tab.page.locator('.cx-amount').textContent()).to.equal('25.00 XDAI');
    await tab.page.goto(s.url);
    await look('waiting', /Waiting for your transfer/);
    expect(await tab.page.locator('button[data-copy]').first().isVisible()).to.equal(true);
    expect(await tab.page.locator('.cx-qr svg').count()).to.equal(1);
    expect(await tab.page.locator('.cx-countdown').textContent()).to.match(/^\d+:\d\d$/);
    const marker = await tab.page.evaluate('window.__same = 1');
    await t.chain.transfer(t.usdt, 1, s.address, 25_000_000n);
    await scan();
    await look('confirming', /1 of 3 confirmations/);
    expect(await tab.page.evaluate('window.__same'), 'the tracker updated in place (SSE)').to.equal(marker);
    await t.chain.mine(CONFIRMATIONS);
    await scan();
    await look('paid', /Paid\./);
    expect(await tab.page.getByRole('link', { name: 'See your receipt' }).count()).to.equal(1);
  });

  it('partly paid, then underpaid when the time runs out; expired with nothing sent', async () => {
    const s = await begin();
    const empty = await begin();
    await t.chain.transfer(t.usdt, 1, s.address, 10_000_000n);
    await t.chain.mine(CONFIRMATIONS);
    await scan();
    await tab.page.goto(s.url);
    await look('partial', /Partly paid.*15\.00 USD/);
    expect(await tab.page.locator('.cx-amount').textContent()).to.equal('15.00 USDT');
    env.clock.advance(31 * MINUTE);
    await t.chain.increaseTime(31 * 60);
    await t.chain.mine(1);
    await scan();
    await tab.page.goto(s.url);
    await look('underpaid', /Underpaid/);
    await tab.page.goto(empty.url);
    await look('expired', /Time ran out/);
  });

  it('underpaid, decided by the merchant: Settings, the receipt, the payment page and the pay page at 390 px', async () => {
    const desk = await browser().newPage({ viewport: PHONE });
    try {
      const handle = uniqueHandle('pier');
      await signUpInBrowser(desk.page, env.origin, { name: 'Pier Studio', handle });
      const pier = (await env.rt.services.merchants.getByHandle(handle))!;
      const xpub = HDKey.fromMasterSeed(randomBytes(32)).derive("m/44'/60'/0'").publicExtendedKey;
      await env.rt.services.providers.update(pier.key, 'crypto-evm', { enabled: true, settings: { xpub, tokens: ['testnet:usdt'], holdMinutes: 20 } });
      const fits = async (page: TrackedPage, name: string) => {
        const overflow = (await page.page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
        expect(overflow, `${name}: nothing wider than the phone`).to.be.at.most(0);
        await page.screenshot(`crypto-${name}-390`);
        page.assertClean();
      };
      await desk.page.goto(`${env.origin}/app/settings/payments`);
      await desk.page.getByLabel('Time to pay (minutes)').waitFor();
      expect(await desk.page.getByLabel('Time to pay (minutes)').inputValue()).to.equal('20');
      await fits(desk, 'settings');

      const link = await env.rt.services.links.create(pier, { type: 'amount', name: 'Harbour tour', amount: 2500, currency: 'USD', payment_limit: 10 });
      const r = await env.rt.services.checkout.start(pier, link, { amount: 2500, currency: 'USD', name: 'Ana', email: 'ana@example.test', provider: 'crypto-evm' });
      const address = JSON.parse(((await env.rt.db('plugin_records').where({ plugin_id: 'provider-crypto-evm', collection: 'sessions', unique_key: r.session.id }).first()) as { data: string }).data).address as Hex;
      await t.chain.transfer(t.usdt, 1, address, 10_000_000n);
      await t.chain.mine(CONFIRMATIONS);
      await scan();
      env.clock.advance(21 * MINUTE);
      await t.chain.increaseTime(21 * 60);
      await t.chain.mine(1);
      await scan();

      await tab.page.goto(`${env.origin}/receipt/${r.payment.id}`);
      await tab.page.getByText('Underpaid.').waitFor();
      await fits(tab, 'receipt-underpaid');
      await desk.page.goto(`${env.origin}/app/payments/${r.payment.id}`);
      await desk.page.getByText('Needs your decision').waitFor();
      await fits(desk, 'payment-underpaid');
      await desk.page.getByRole('button', { name: 'Accept' }).click();
      await desk.page.locator('#outcome').getByText('Accepted', { exact: true }).waitFor();
      await fits(desk, 'payment-accepted');
      await tab.page.goto(`${env.origin}/receipt/${r.payment.id}`);
      await tab.page.getByText('Payment successful').waitFor();
      await fits(tab, 'receipt-accepted');
      await tab.page.goto(`${env.origin}/p/provider-crypto-evm/pay/${r.session.id}`);
      await tab.page.getByText('Accepted by Pier Studio').waitFor();
      await fits(tab, 'pay-accepted');
    } finally {
      await desk.close();
    }
  });

  it('works without JavaScript: the refresh link shows what arrived', async () => {
    const s = await begin();
    const nojs = await browser().newPage({ viewport: PHONE, javaScriptEnabled: false });
    try {
      await nojs.page.goto(s.url);
      expect(await nojs.page.locator('button[data-copy]').first().isVisible()).to.equal(false);
      await t.chain.transfer(t.usdt, 1, s.address, 25_000_000n);
      await scan();
      await nojs.page.getByRole('link', { name: 'Refresh to see what arrived' }).click();
      await nojs.page.locator('#tracker').filter({ hasText: /1 of 3 confirmations/ }).waitFor();
      await nojs.screenshot('crypto-nojs-confirming-390');
      nojs.assertClean();
    } finally {
      await nojs.close();
    }
  });
});
