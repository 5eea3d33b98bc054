/**
 * The chain watcher: one pass per network over ERC-20 `Transfer` logs to the addresses of active
 * checkouts, then each checkout settled from what arrived.
 *
 *   confirmed  blocks up to `head - confirmations + 1`, from the network's cursor (the last block
 *              fully recorded), in chunks of `maxBlockRange`; the cursor moves only after a chunk's
 *              transfers are stored, so a crash or an RPC failure re-reads that chunk (transfers are
 *              keyed by tx hash + log index: stored once) and never skips one
 *   pending    the blocks above that, re-read on every pass and never stored as paid: a transfer a
 *              reorg removes simply disappears from the tracker
 *   native     a network's own coin (`native`), when a watched checkout accepts it: each block's
 *              transactions read the same way (confirmed, then pending), successful value transfers only
 *   recheck    confirmed transfers near the cursor whose transaction the node no longer knows (two
 *              passes in a row: a reorg deeper than the confirmations) are taken off and flagged
 *   settle     in time (block time ≤ the checkout's end) ≥ price → authorize (+ overpaid);
 *              checkout over with nothing in flight → expire (+ underpaid when something came);
 *              anything after the end → paid_late
 */
import { randomBytes } from 'node:crypto';
import type { PluginApi, PluginRecord } from 'paylink/plugin-api';
import { rpcClient, type RpcClient, type RpcOptions } from './chain.ts';
import type { Config, Network, SessionData, Token, Transfer } from './model.ts';
import { assetsOf, HOLD_MINUTES, isNative, minorFrom18, to18, tokenId } from './model.ts';

const ADDRESSES_PER_QUERY = 200;
/** Confirmed transfers this close to the cursor (blocks) are checked again on every pass: a reorg deeper than the confirmations. */
const RECHECK_BLOCKS = 256;
/** Passes in a row a confirmed transaction must be unknown to the node before it counts as reorganised away (one lagging node is not a reorg). */
const MISSING_PASSES = 2;
/** Checkouts read per store query: a short query each (SQLite reads hold the event loop while they run). */
const SESSIONS_PER_PAGE = 100;
/** A pass over thousands of checkouts gives the event loop a turn once it has run this long (ms). */
const SLICE_MS = 8;

/** Awaited inside long loops: yields to the event loop (timers, requests) once the current slice is used up. */
function pacer(): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < SLICE_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    since = performance.now();
  };
}
/** How long past the watch window the watcher still looks at a checkout (to hand its unused address back). */
const RETIRE_SLACK_MS = 24 * 3_600_000;
/** How long a scan holds the scanning lease without renewing it (it renews after every chunk). */
const LEASE_MS = 5 * 60_000;

type LeaseData = { holder: string; until: number };

export function createWatcher(api: PluginApi, config: Config, rpcOpts: RpcOptions = {}) {
  const clients = new Map<string, RpcClient>();
  const client = (n: Network) => {
    let c = clients.get(n.id);
    if (!c) clients.set(n.id, (c = rpcClient(n.rpcUrl, { attempts: config.rpcAttempts, backoffMs: config.rpcBackoffMs, ...rpcOpts })));
    return c;
  };

  /**
   * Checkouts still watched: open ones, and ended ones within the late-payment window. One whose
   * window has passed without anything ever arriving gives its address back for reuse, so unpaid
   * checkouts do not leave long runs of unused addresses (wallets stop looking after ~20).
   */
  async function activeSessions(): Promise<PluginRecord<SessionData>[]> {
    const now = api.now().getTime();
    const oldest = now - (Math.max(config.holdMinutes, HOLD_MINUTES.max) * 60_000 + config.watchHours * 3_600_000 + RETIRE_SLACK_MS);
    const out: PluginRecord<SessionData>[] = [];
    let beforeId: string | undefined;
    const pace = pacer();
    for (;;) {
      await pace();
      const page = await api.store.list<SessionData>('sessions', { limit: SESSIONS_PER_PAGE, ...(beforeId ? { beforeId } : {}) });
      for (const r of page) {
        if (r.data.state === 'open' || Date.parse(r.data.watchUntil) > now) out.push(r);
        else if (r.data.state === 'expired' && !r.data.recycled && !r.data.transfers.length && !r.data.pending.length) await retire(r);
      }
      if (page.length < SESSIONS_PER_PAGE || page[page.length - 1].createdAt.getTime() < oldest) return out;
      beforeId = page[page.length - 1].id;
    }
  }

  /** Offers a never-used address for the merchant's next checkout (claimed there with a unique key). */
  async function retire(r: PluginRecord<SessionData>): Promise<void> {
    const gen = r.data.gen ?? 0;
    await api.store.insertOnce('recyclable', `${r.merchantId}:${r.data.index}:${gen}`, { merchantId: r.merchantId, data: { index: r.data.index, gen } });
    r.data.recycled = true;
    await api.store.update('sessions', r.id, r.data);
  }

  /**
   * One scan at a time across every process: a lease record taken with compare-and-set. A crashed
   * scan's lease lapses after LEASE_MS (real time: it is about processes, not Paylink's clock).
   */
  const lease = {
    async acquire(): Promise<{ id: string; data: LeaseData } | null> {
      const mine = { holder: randomBytes(8).toString('hex'), until: Date.now() + LEASE_MS };
      const rec = await api.store.getByKey<LeaseData>('leases', 'scan');
      if (!rec) {
        const made = await api.store.insertOnce('leases', 'scan', { merchantId: null, data: mine });
        return made ? { id: made.id, data: mine } : null;
      }
      if (rec.data.until > Date.now()) return null;
      return (await api.store.replaceIf('leases', rec.id, rec.data, mine)) ? { id: rec.id, data: mine } : null;
    },
    async renew(l: { id: string; data: LeaseData }): Promise<void> {
      const next = { holder: l.data.holder, until: Date.now() + LEASE_MS };
      if (!(await api.store.replaceIf('leases', l.id, l.data, next))) throw new Error('crypto watcher: the scanning lease was lost (a scan ran past its lease); stopping');
      l.data = next;
    },
    async release(l: { id: string; data: LeaseData }): Promise<void> {
      await api.store.replaceIf('leases', l.id, l.data, { holder: '', until: 0 });
    },
  };

  async function saveCursor(n: Network, block: number) {
    const rec = await api.store.getByKey<{ block: number }>('cursors', n.id);
    if (rec) await api.store.update('cursors', rec.id, { block });
    else if (!(await api.store.insertOnce('cursors', n.id, { merchantId: null, data: { block } }))) {
      const again = await api.store.getByKey<{ block: number }>('cursors', n.id);
      await api.store.update('cursors', again!.id, { block });
    }
  }

  /** Reads one network: confirmed transfers stored on their checkouts, pending ones replaced. */
  async function scanNetwork(n: Network, sessions: PluginRecord<SessionData>[], renew: () => Promise<void>): Promise<void> {
    const rpc = client(n);
    const head = await rpc.blockNumber();
    const safe = head - n.confirmations + 1;
    const stored = await api.store.getByKey<{ block: number }>('cursors', n.id);
    let cursor = stored ? stored.data.block : (n.startBlock ?? Math.max(0, safe - 1000)) - 1;
    const byAddress = new Map(sessions.map((s) => [s.data.address.toLowerCase(), s]));
    const tokens = new Map(n.tokens.map((t) => [t.address.toLowerCase(), t]));
    const addresses = [...byAddress.keys()];
    const times = new Map<number, number>();
    const timeOf = async (b: number) => times.get(b) ?? (times.set(b, await rpc.blockTime(b)), times.get(b)!);
    // The native coin: only read blocks' transactions when a watched checkout accepts it.
    const native = n.native ? assetsOf(n).find(isNative)! : null;
    const nativeId = native ? tokenId(n, native) : null;
    const wantsNative = !!nativeId && sessions.some((s) => s.data.tokens.includes(nativeId));

    const read = async (from: number, to: number) => {
      const found: { s: PluginRecord<SessionData>; t: Transfer }[] = [];
      if (wantsNative && native) {
        // Plain value transfers: every block's transactions, to a watched address, that succeeded.
        for (let b = from; b <= to; b++) {
          const block = await rpc.blockWithTxs(b);
          const time = Number(BigInt(block.timestamp));
          times.set(b, time);
          for (const tx of block.transactions) {
            const s = tx.to ? byAddress.get(tx.to.toLowerCase()) : undefined;
            const value = BigInt(tx.value ?? '0x0');
            if (!s || value === 0n || !(await rpc.succeeded(tx.hash))) continue;
            const hash = tx.hash.toLowerCase();
            found.push({ s, t: { key: `${n.id}:${hash}:native`, network: n.id, token: nativeId!, txHash: hash, block: b, time, value: value.toString(), value18: to18(value, native.decimals).toString() } });
          }
        }
      }
      if (!tokens.size) return found;
      for (let i = 0; i < addresses.length; i += ADDRESSES_PER_QUERY) {
        for (const log of await rpc.transfers([...tokens.keys()], addresses.slice(i, i + ADDRESSES_PER_QUERY), from, to)) {
          const token = tokens.get(log.address.toLowerCase());
          const s = byAddress.get(`0x${log.topics[2]?.slice(26) ?? ''}`.toLowerCase());
          if (!token || !s) continue;
          const block = Number(BigInt(log.blockNumber));
          found.push({
            s,
            t: { key: `${n.id}:${log.transactionHash.toLowerCase()}:${Number(BigInt(log.logIndex))}`, network: n.id, token: tokenId(n, token), txHash: log.transactionHash.toLowerCase(), block, time: await timeOf(block), value: BigInt(log.data).toString(), value18: to18(BigInt(log.data), token.decimals).toString() },
          });
        }
      }
      return found;
    };

    if (addresses.length) {
      // Confirmed blocks, chunk by chunk; the cursor moves after each chunk is stored.
      while (cursor < safe) {
        const from = cursor + 1;
        const to = Math.min(safe, cursor + n.maxBlockRange);
        for (const { s, t } of await read(from, to)) {
          if (!accepts(s.data, n, t)) continue;
          await api.store.insertOnce('transfers', t.key.slice(0, 191), { merchantId: s.merchantId, data: { sessionId: s.data.sessionId, ...t } });
          if (s.data.transfers.some((x) => x.key === t.key)) continue;
          s.data.transfers.push(t);
          await api.store.update('sessions', s.id, s.data);
        }
        await saveCursor(n, to);
        cursor = to;
        await renew();
      }
    } else if (safe > cursor) {
      await saveCursor(n, safe); // nobody to watch: nothing to read
    }

    await recheck(n, rpc, sessions, cursor);

    // Above the confirmed range: what is on its way, re-read every pass (a reorged transfer vanishes).
    const pending = addresses.length && head > Math.max(cursor, safe) ? await read(Math.max(cursor, safe) + 1, head) : [];
    const pace = pacer();
    const pendingOf = new Map<PluginRecord<SessionData>, typeof pending>();
    for (const p of pending) pendingOf.set(p.s, [...(pendingOf.get(p.s) ?? []), p]);
    for (const s of sessions) {
      // Most checkouts have nothing on its way, before or now: nothing to compare or allocate.
      if (!s.data.pending.length && !pendingOf.has(s)) continue;
      await pace();
      const mine = (pendingOf.get(s) ?? []).filter((p) => p.s === s && accepts(s.data, n, p.t)).map((p) => ({ ...p.t, confirmations: head - p.t.block + 1 }));
      const others = s.data.pending.filter((p) => p.network !== n.id);
      const next = [...others, ...mine];
      if (!next.length && !s.data.pending.length) continue;
      if (JSON.stringify(next) !== JSON.stringify(s.data.pending)) {
        s.data.pending = next;
        await api.store.update('sessions', s.id, s.data);
      }
    }
  }

  /**
   * Deep reorgs: a confirmed transfer (within RECHECK_BLOCKS of the cursor) whose transaction the node
   * no longer knows on MISSING_PASSES passes in a row was reorganised away after it counted. It is
   * taken off the checkout (the tracker and any later decision no longer count it) and, when it had
   * already decided the checkout (paid, underpaid, late), the payment is flagged for the merchant as
   * a dispute with status `chain_reorg` (payment.disputed): the money is not in their wallet.
   */
  async function recheck(n: Network, rpc: RpcClient, sessions: PluginRecord<SessionData>[], cursor: number): Promise<void> {
    const pace = pacer();
    for (const s of sessions) {
      const d = s.data;
      if (!d.transfers.length) continue;
      const recent = d.transfers.filter((t) => t.network === n.id && t.block > cursor - RECHECK_BLOCKS);
      if (!recent.length) continue;
      await pace();
      let changed = false;
      for (const t of recent) {
        const missing = (d.missing ??= {});
        if (await rpc.receipt(t.txHash)) {
          if (missing[t.key]) {
            delete missing[t.key];
            changed = true;
          }
          continue;
        }
        missing[t.key] = (missing[t.key] ?? 0) + 1;
        changed = true;
        if (missing[t.key] < MISSING_PASSES) continue;
        delete missing[t.key];
        d.transfers = d.transfers.filter((x) => x.key !== t.key);
        (d.vanished ??= []).push(t);
        api.log.warn('crypto watcher: a confirmed transfer vanished (a reorg deeper than the confirmations)', { network: n.id, txHash: t.txHash, sessionId: d.sessionId });
        if (d.state !== 'open') {
          await api.services.checkout.flagDispute(d.paymentId, {
            providerRef: t.txHash,
            status: 'chain_reorg',
            amount: minorFrom18(BigInt(t.value18), d.currencyDecimals),
            reason: 'chain reorganisation deeper than the confirmations',
          });
        }
      }
      if (changed) await api.store.update('sessions', s.id, d);
    }
  }

  /** Decides a checkout from what arrived. */
  async function settle(s: PluginRecord<SessionData>, sawEverything: boolean): Promise<void> {
    const d = s.data;
    // Nothing arrived and nothing to end yet (the common case of thousands of open checkouts): no work.
    if (!d.transfers.length && (d.state !== 'open' || api.now().getTime() <= Date.parse(d.expiresAt))) return;
    const end = Date.parse(d.expiresAt) / 1000;
    const inTime = d.transfers.filter((t) => t.time <= end);
    const late = d.transfers.filter((t) => t.time > end && !d.flagged.includes(t.key));
    const sum = (ts: Transfer[]) => ts.reduce((a, t) => a + BigInt(t.value18), 0n);
    const received = sum(inTime);
    const expected = BigInt(d.expected18);
    const hashes = (ts: Transfer[]) => [...new Set(ts.map((t) => t.txHash))];
    const minor = (v: bigint) => minorFrom18(v, d.currencyDecimals);
    const save = () => api.store.update('sessions', s.id, d);

    if (d.state === 'open' && received >= expected && received > 0n) {
      const first = inTime[0];
      const net = config.networks.find((n) => n.id === first.network);
      const result = await api.services.checkout.authorize(d.paymentId, first.txHash, {
        paymentMethod: { type: 'crypto', brand: first.token.split(':')[1], ...(net ? { network: net.id } : {}), txHashes: hashes(inTime) },
      });
      if (result.status === 'paid') {
        d.state = 'paid';
        await save();
        if (received > expected) await api.services.checkout.flagOutcome(d.paymentId, { outcome: 'overpaid', amountReceived: minor(received), txHashes: hashes(inTime) });
      } else {
        // Sent in time but confirmed after the checkout's slot lapsed, and the link filled up meanwhile:
        // core counted nothing (and could not refund: no key). The merchant decides, as for a late payment.
        d.state = 'late';
        d.flagged.push(...inTime.map((t) => t.key));
        await save();
        await api.services.checkout.flagOutcome(d.paymentId, { outcome: 'paid_late', amountReceived: minor(received), txHashes: hashes(inTime) });
      }
    } else if (d.state === 'open' && sawEverything && api.now().getTime() > Date.parse(d.expiresAt) && !d.pending.some((p) => p.time <= end)) {
      await api.services.checkout.expire(d.paymentId);
      d.state = received > 0n ? 'underpaid' : 'expired';
      await save();
      if (received > 0n) await api.services.checkout.flagOutcome(d.paymentId, { outcome: 'underpaid', amountReceived: minor(received), txHashes: hashes(inTime) });
    }
    if (d.state !== 'open' && late.length) {
      await api.services.checkout.flagOutcome(d.paymentId, { outcome: 'paid_late', amountReceived: minor(sum(late)), txHashes: hashes(late) });
      d.flagged.push(...late.map((t) => t.key));
      if (d.state !== 'paid') d.state = 'late';
      await save();
    }
  }

  return {
    /** One pass over every network, then every active checkout settled. Throws (the job retries) after an RPC keeps failing. */
    async scan(): Promise<void> {
      const held = await lease.acquire();
      if (!held) {
        api.log.info('crypto watcher: another process is scanning; skipping this pass');
        return;
      }
      try {
        const sessions = await activeSessions();
        let failure: unknown = null;
        for (const n of config.networks) {
          try {
            await scanNetwork(n, sessions, () => lease.renew(held));
          } catch (err) {
            api.log.warn('crypto watcher: network scan failed; it resumes from its last recorded block', { network: n.id, error: err });
            failure ??= err;
          }
        }
        await lease.renew(held);
        // A checkout ends unpaid only after a pass that read every network up to its head.
        const pace = pacer();
        for (const s of sessions) {
          await pace();
          await settle(s, failure === null);
        }
        if (failure) throw failure;
      } finally {
        await lease.release(held);
      }
    },
    /** For tests and operators: whether a scan holds the lease now. */
    async scanning(): Promise<boolean> {
      const rec = await api.store.getByKey<LeaseData>('leases', 'scan');
      return !!rec && rec.data.until > Date.now();
    },
  };
}

/** A transfer counts for a checkout when its token is one the merchant accepts, in the checkout's currency. */
function accepts(d: SessionData, n: Network, t: Transfer): boolean {
  const token: Token | undefined = assetsOf(n).find((x) => tokenId(n, x) === t.token);
  return !!token && token.currency === d.currency && d.tokens.includes(t.token);
}
