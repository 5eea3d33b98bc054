/**
 * The crypto watcher at scale (`npm run bench`, issue 17): 10,000 open crypto checkouts watched on
 * one network of a real chain (ganache on loopback, an ERC-20 compiled with solc, in this process),
 * while a fresh Node process runs the watcher as production does — the scheduled scan job through
 * the job queue — pass after pass with new blocks mined between passes. Aims: the longest event-loop
 * block of the measured process ≤ 20 ms (after its first pass, which loads code on first use), and one scan per block per network: every confirmed block
 * is read by exactly one pass (one eth_getLogs per block range and batch of 200 addresses, never
 * again). And it must still see the money: the checkouts paid before the first pass end `paid`,
 * and nothing else does.
 *
 * Of the 10,000 checkouts, BENCH_CRYPTO_REAL (default 200) are started through the checkout service
 * (their addresses derived from the merchant's xpub; the first 10 are paid in full on the chain);
 * the rest are stored as the plugin stores an open checkout, with addresses of their own, through
 * the plugin store's insertMany (starting 10,000 checkouts one by one would make this bench about
 * seeding). The clock stays within the checkouts' 30 minutes, so none expires.
 *
 * Environment: BENCH_CRYPTO (checkouts, default 10,000; 0 skips), BENCH_CRYPTO_PASSES (6),
 * BENCH_CRYPTO_BLOCKS (new blocks per pass, 5). Standalone: `npx tsx test/bench/crypto.ts`.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { loopGaps, runBenchChild, runStandalone, type CheckFn } from './child.ts';

export const CRYPTO_AIMS = { blockMs: 20 };
const PAID = 10;
const CONFIRMATIONS = 3;
/** The plugin's addresses per eth_getLogs request (watcher.ts ADDRESSES_PER_QUERY). */
const ADDRESSES_PER_QUERY = 200;
const SCAN = 'plugin.provider-crypto-evm.scan';

export interface CryptoResult {
  label: string;
  sessions: number;
  real: number;
  passes: number;
  seedSeconds: number;
  scanSeconds: number[];
  blockMs: number;
  p99Ms: number;
  /** The longest gap's part spent on the CPU (the rest: waiting for a CPU on a busy machine). */
  busyMaxMs: number;
  /** Confirmed blocks read over the passes, and how many times each was read per address batch (min, max). */
  blocks: number;
  readsPerBlock: { min: number; max: number };
  /** Blocks read as confirmed by more than one pass (must be 0). */
  rereadBlocks: number;
  getLogs: number;
  paid: number;
  paidExpected: number;
  paidOthers: number;
}

/** Sets up the chain, runs the measuring process, and answers its result. */
export async function measureCrypto(env: Record<string, string>, opts: { sessions: number; real: number; passes: number; blocksPerPass: number; label: string }, log: (line: string) => void): Promise<CryptoResult> {
  const { startChain, TEST_XPUB, CHAIN_ID } = await import('../support/evm.ts');
  const { deriveAddress, parseXpub } = await import('../../plugins/provider-crypto-evm/chain.ts');
  const chain = await startChain(new Date());
  try {
    const usdt = await chain.deploy('USDT', 6);
    const startBlock = await chain.blockNumber();
    // The merchant's first checkouts get the xpub's addresses 0, 1, 2 …: the first PAID are paid in full now.
    const xpub = parseXpub(TEST_XPUB)!;
    for (let i = 0; i < PAID; i++) await chain.transfer(usdt, 1 + (i % 3), deriveAddress(xpub, i), 25_000_000n);
    log(`  crypto: ganache with ${PAID} transfers from block ${startBlock}`);
    const config = {
      networks: [{ id: 'bench', name: 'Bench', chainId: CHAIN_ID, rpcUrl: chain.url, confirmations: CONFIRMATIONS, startBlock, maxBlockRange: 20, tokens: [{ symbol: 'USDT', address: usdt, decimals: 6, currency: 'USD' }] }],
    };
    return await runBenchChild<CryptoResult>({
      name: 'crypto',
      label: opts.label,
      env: { ...env, PAYLINK_PLUGIN_PROVIDER_CRYPTO_EVM: JSON.stringify(config) },
      childVar: 'BENCH_CRYPTO_CHILD',
      payload: { ...opts, xpub: TEST_XPUB, rpcUrl: chain.url, startBlock },
      nodeArgs: process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : [],
      log,
    });
  } finally {
    await chain.close();
  }
}

export const cryptoCorrect = (r: CryptoResult) => r.paid === r.paidExpected && r.paidOthers === 0 && r.readsPerBlock.min === 1 && r.readsPerBlock.max === 1 && r.rereadBlocks === 0;

export function reportCrypto(r: CryptoResult, check: CheckFn): string[] {
  const fmt = (n: number) => Math.round(n).toLocaleString('en');
  const once = r.readsPerBlock.min === 1 && r.readsPerBlock.max === 1 && r.rereadBlocks === 0;
  return [
    '',
    `Crypto watcher (${r.label}): ${fmt(r.sessions)} open checkouts (${fmt(r.real)} started through checkout, the rest stored), ${r.passes} scan passes`,
    `  seeded in ${r.seedSeconds.toFixed(1)} s; passes took ${r.scanSeconds.map((s) => s.toFixed(2)).join(' / ')} s; ${fmt(r.getLogs)} eth_getLogs (batches of ${ADDRESSES_PER_QUERY} addresses) over ${fmt(r.blocks)} confirmed blocks`,
    `  event loop during the passes after the first (which loads code on first use): longest block ${r.blockMs.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms; longest gap spent on the CPU ${r.busyMaxMs.toFixed(1)} ms (the rest was waiting for a CPU)`,
    `  confirmed reads per block and address batch: min ${r.readsPerBlock.min}, max ${r.readsPerBlock.max}; blocks read by two passes: ${r.rereadBlocks}; paid ${r.paid} of ${r.paidExpected}, others paid ${r.paidOthers}`,
    `  ${check(`crypto ${r.label}: longest loop block ms`, r.blockMs.toFixed(1), `≤ ${CRYPTO_AIMS.blockMs} ms`, r.blockMs <= CRYPTO_AIMS.blockMs)}`,
    `  ${check(`crypto ${r.label}: one scan per block`, once ? 'yes' : 'no', 'each block once', once)}`,
    `  ${check(`crypto ${r.label}: paid checkouts found`, `${r.paid}/${r.paidExpected}`, 'all, and no other', r.paid === r.paidExpected && r.paidOthers === 0)}`,
  ];
}

/** The measuring process: seeds the checkouts, then runs the scan job pass after pass. */
async function child(spec: { sessions: number; real: number; passes: number; blocksPerPass: number; label: string; xpub: string; rpcUrl: string; startBlock: number }): Promise<CryptoResult> {
  const { loadConfig } = await import('../../src/config.ts');
  const { createRuntime } = await import('../../src/runtime.ts');
  const { ManualClock } = await import('../../src/core/clock.ts');
  const { verificationCode } = await import('../../plugins/provider-crypto-evm/index.ts');
  const clock = new ManualClock(new Date());
  // Every JSON-RPC call of the watcher, in order, with the pass it belongs to.
  let pass = -1;
  const calls: { pass: number; method: string; params: unknown[] }[] = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    if (String(input) === spec.rpcUrl && typeof init?.body === 'string') {
      const m = JSON.parse(init.body) as { method: string; params: unknown[] };
      calls.push({ pass, method: m.method, params: m.params });
    }
    return realFetch(input, init);
  }) as typeof fetch;
  const rpc = (method: string) => realFetch(spec.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: [] }) }).then((r) => r.json());

  const rt = await createRuntime(loadConfig(process.env), { recordViews: false, clock });
  try {
    const t0 = performance.now();
    const { merchant } = await rt.services.merchants.signUp({ name: 'Bench Crypto', handle: `crypto${Date.now().toString(36)}`, email: 'crypto@bench.test', password: 'correct horse battery' });
    await rt.services.providers.update(merchant.key, 'crypto-evm', { enabled: true, settings: { xpub: spec.xpub, tokens: ['bench:usdt'] } });
    const link = await rt.services.links.create(merchant, { type: 'amount', name: 'Bench class', amount: 2500, currency: 'USD', payment_limit: null });
    const real: string[] = [];
    for (let i = 0; i < spec.real; i++) {
      const r = await rt.services.checkout.start(merchant, link, { amount: 2500, currency: 'USD', name: 'Ana', email: 'ana@bench.test', provider: 'crypto-evm' });
      real.push(r.payment.id);
    }
    // The rest: open checkouts as the plugin stores them (addresses of their own, nothing received).
    const store = (await import('../../src/core/plugins/store.ts')).createPluginStore(rt.db, clock, 'provider-crypto-evm', { keyOf: rt.services.merchants.keyOf, publicIdsOf: rt.services.merchants.publicIdsOf });
    const expiresAt = new Date(clock.now().getTime() + 30 * 60_000).toISOString();
    const watchUntil = new Date(clock.now().getTime() + 30 * 60_000 + 24 * 3_600_000).toISOString();
    for (let i = spec.real; i < spec.sessions; i += 500) {
      const batch = [];
      for (let j = i; j < Math.min(spec.sessions, i + 500); j++) {
        const sessionId = `cs_bench${String(j).padStart(17, '0')}`;
        batch.push({
          merchantId: merchant.id,
          data: { sessionId, paymentId: `pay_bench${j}`, index: 1_000_000 + j, gen: 0, address: `0x${randomBytes(20).toString('hex')}`, amount: 2500, currency: 'USD', currencyDecimals: 2, expected18: (25n * 10n ** 18n).toString(), tokens: ['bench:usdt'], code: verificationCode(sessionId), expiresAt, watchUntil, state: 'open', transfers: [], pending: [], flagged: [] },
        });
      }
      await store.insertMany('sessions', batch);
    }
    const seedSeconds = (performance.now() - t0) / 1000;

    const probe = loopGaps();
    const scanSeconds: number[] = [];
    const cursors: number[] = [];
    const cursorOf = async () => {
      const rec = await store.getByKey<{ block: number }>('cursors', 'bench');
      return rec ? rec.data.block : spec.startBlock - 1;
    };
    const first = await cursorOf();
    probe.take();
    probe.takeBusy();
    const gaps: number[] = [];
    let busyMaxMs = 0;
    for (pass = 0; pass < spec.passes; pass++) {
      for (let b = 0; b < spec.blocksPerPass; b++) await rpc('evm_mine');
      const t = performance.now();
      await rt.jobs.enqueue(rt.db, SCAN, {});
      await rt.jobs.drain();
      scanSeconds.push((performance.now() - t) / 1000);
      // The first pass loads code on first use (a one-off of a fresh process): it reads blocks like the others but its loop is not measured.
      const busy = probe.takeBusy();
      if (pass > 0) {
        gaps.push(...probe.take());
        busyMaxMs = Math.max(busyMaxMs, busy);
      } else probe.take();
      cursors.push(await cursorOf());
    }
    probe.stop();
    gaps.sort((a, b) => a - b);

    // Confirmed reads: eth_getLogs ranges at or below the pass's new cursor (the rest is the unconfirmed tail, re-read by design).
    const batches = Math.ceil(spec.sessions / ADDRESSES_PER_QUERY);
    const readBy = new Map<number, Set<number>>();
    const reads = new Map<number, number>();
    let getLogs = 0;
    for (const c of calls) {
      if (c.method !== 'eth_getLogs') continue;
      getLogs++;
      const p = c.params[0] as { fromBlock: string; toBlock: string };
      const [from, to] = [Number(p.fromBlock), Number(p.toBlock)];
      if (to > cursors[c.pass]) continue;
      for (let b = from; b <= to; b++) {
        reads.set(b, (reads.get(b) ?? 0) + 1);
        readBy.set(b, (readBy.get(b) ?? new Set()).add(c.pass));
      }
    }
    const confirmed = [...Array(Math.max(0, cursors[cursors.length - 1] - first)).keys()].map((i) => first + 1 + i);
    const perBatch = confirmed.map((b) => (reads.get(b) ?? 0) / batches);
    const rows = (await rt.db('payments').where({ merchant_id: merchant.key, status: 'paid' }).select('public_id')) as { public_id: string }[];
    const paidIds = new Set(rows.map((r) => r.public_id));
    return {
      label: spec.label,
      sessions: spec.sessions,
      real: spec.real,
      passes: spec.passes,
      seedSeconds,
      scanSeconds,
      blockMs: gaps.length ? gaps[gaps.length - 1] : 0,
      p99Ms: gaps.length ? gaps[Math.min(gaps.length - 1, Math.floor(gaps.length * 0.99))] : 0,
      busyMaxMs,
      blocks: confirmed.length,
      readsPerBlock: { min: perBatch.length ? Math.min(...perBatch) : 0, max: perBatch.length ? Math.max(...perBatch) : 0 },
      rereadBlocks: confirmed.filter((b) => (readBy.get(b)?.size ?? 0) > 1).length,
      getLogs,
      paid: real.slice(0, PAID).filter((id) => paidIds.has(id)).length,
      paidExpected: Math.min(PAID, spec.real),
      paidOthers: [...paidIds].filter((id) => !real.slice(0, PAID).includes(id)).length,
    };
  } finally {
    await rt.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.env.BENCH_CRYPTO_CHILD) {
    process.stdout.write(`${JSON.stringify(await child(JSON.parse(process.env.BENCH_CRYPTO_CHILD)))}\n`);
  } else {
    await runStandalone('crypto', async ({ env, label }, log, check) => {
      const result = await measureCrypto(env, cryptoOptions(label), log);
      return { lines: reportCrypto(result, check), correct: cryptoCorrect(result) };
    });
  }
}

/** What the environment asks (BENCH_CRYPTO, BENCH_CRYPTO_REAL, BENCH_CRYPTO_PASSES, BENCH_CRYPTO_BLOCKS). */
export function cryptoOptions(label: string) {
  return {
    sessions: Number(process.env.BENCH_CRYPTO ?? 10_000),
    real: Number(process.env.BENCH_CRYPTO_REAL ?? 200),
    passes: Number(process.env.BENCH_CRYPTO_PASSES ?? 6),
    blocksPerPass: Number(process.env.BENCH_CRYPTO_BLOCKS ?? 5),
    label,
  };
}
