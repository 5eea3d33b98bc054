// provider-crypto-evm: stablecoin payments (ERC-20 on EVM networks) straight to the merchant's own
// wallet. Paylink only ever sees the merchant's extended PUBLIC key: each checkout gets a fresh
// address derived from it, so a payment is told apart by its address, and the watcher (a scheduled
// job, once per minute across the cluster) reads the chain for transfers to those addresses.
//
//   start    → a fresh derivation index for the merchant (claimed atomically, no gaps), the checkout's
//              address, price in token units (1:1 for a stablecoin of the link's currency), a
//              verification code; the customer goes to /p/provider-crypto-evm/pay/<session>
//   pay page → token, network, exact amount, address (copy), EIP-681 QR, countdown, live tracker
//              (server-sent events; a refresh link without JavaScript)
//   watcher  → watcher.ts (confirmations, cursors, reorgs, under/over/late)
//   refund   → impossible without a private key: the merchant returns funds from their wallet
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import express, { type Request, type Response } from 'express';
import QRCode from 'qrcode';
import { definePlugin, ProviderError, z, type PluginApi, type PluginRecord } from 'paylink/plugin-api';
import { deriveAddress, parseXpub } from './chain.ts';
import { assetsOf, configSchema, currencyDecimals, HOLD_MINUTES, isNative, formatUnits, tokenId, tokenUnits, to18, type Config, type SessionData } from './model.ts';
import { createWatcher } from './watcher.ts';

export const PLUGIN_ID = 'provider-crypto-evm';
const SESSION_ID = /^cs_[0-9A-Za-z]{22}$/;

export interface CryptoSettings {
  xpub: string;
  /** Accepted token ids (`<network>:<symbol>`). */
  tokens: string[];
  /** Receiving address #0 of the xpub (not a secret): shown so the merchant can compare it with their wallet. */
  firstAddress?: string;
  /** The customer's countdown (minutes; the slot on a limited link is held that long). Absent: the install's `holdMinutes`. */
  holdMinutes?: number;
}


/** A short code for support to match a customer's claim to this checkout (shown on the pay page and the payment). */
export function verificationCode(sessionId: string): string {
  const alphabet = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';
  const h = createHash('sha256').update(`paylink-crypto:${sessionId}`).digest();
  let s = '';
  for (let i = 0; i < 6; i++) s += alphabet[h[i] % 32];
  return `${s.slice(0, 3)}-${s.slice(3)}`;
}

export default definePlugin({
  id: PLUGIN_ID,
  version: '1.0.0',
  apiVersion: 1,
  description: 'Stablecoin payments on EVM networks straight to the merchant’s own wallet (xpub; no private keys).',
  config: configSchema,
  viewsDir: fileURLToPath(new URL('./views', import.meta.url)),
  register(api, config: Config) {
    const allTokens = config.networks.flatMap((n) => assetsOf(n).map((t) => ({ id: tokenId(n, t), network: n, token: t })));
    const settingsSchema = z
      .preprocess(
        (raw) => {
          if (!raw || typeof raw !== 'object') return raw;
          const o = { ...(raw as Record<string, unknown>) };
          // The settings form posts one checkbox per token (`token.<id>` = "1" / "0").
          const boxes = Object.keys(o).filter((k) => k.startsWith('token.'));
          if (boxes.length) o.tokens = boxes.filter((k) => o[k] === '1' || o[k] === true).map((k) => k.slice('token.'.length));
          for (const k of boxes) delete o[k];
          if (typeof o.tokens === 'string') o.tokens = o.tokens.split(',').map((x) => x.trim()).filter(Boolean);
          // The form posts the minutes as text: blank keeps the default.
          if (typeof o.holdMinutes === 'string') o.holdMinutes = o.holdMinutes.trim() === '' ? undefined : /^\s*\d+\s*$/.test(o.holdMinutes) ? Number(o.holdMinutes) : o.holdMinutes;
          delete o.firstAddress;
          return o;
        },
        z.object({
          xpub: z.string({ error: 'Paste your wallet’s extended public key (xpub…).' }).trim().min(1, 'Paste your wallet’s extended public key (xpub…).').max(200),
          tokens: z.array(z.string().max(64)).max(100).default([]),
          holdMinutes: z
            .number({ error: `Enter the countdown in whole minutes, from ${HOLD_MINUTES.min} to ${HOLD_MINUTES.max}.` })
            .int(`Enter the countdown in whole minutes, from ${HOLD_MINUTES.min} to ${HOLD_MINUTES.max}.`)
            .min(HOLD_MINUTES.min, `At least ${HOLD_MINUTES.min} minutes: a customer needs time to open their wallet and send.`)
            .max(HOLD_MINUTES.max, `At most ${HOLD_MINUTES.max} minutes (3 hours): a limited link holds a spot that long.`)
            .optional(),
        }),
      )
      .superRefine((s, ctx) => {
        if (!parseXpub(s.xpub)) ctx.addIssue({ code: 'custom', path: ['xpub'], message: 'This is not an extended public key. Export the account’s xpub from your wallet (it starts with xpub, and is about 111 characters); never paste a private key or seed phrase.' });
        if (!config.networks.length) ctx.addIssue({ code: 'custom', path: ['tokens'], message: 'This Paylink install has no networks configured (PAYLINK_PLUGIN_PROVIDER_CRYPTO_EVM): ask its operator.' });
        else if (!s.tokens.length) ctx.addIssue({ code: 'custom', path: ['tokens'], message: 'Choose at least one token to accept.' });
        for (const t of s.tokens) if (!allTokens.some((x) => x.id === t)) ctx.addIssue({ code: 'custom', path: ['tokens'], message: `Unknown token “${t}”; choose from ${allTokens.map((x) => x.id).join(', ')}.` });
      })
      .transform((s) => ({ xpub: s.xpub, tokens: [...new Set(s.tokens)], firstAddress: deriveAddress(parseXpub(s.xpub)!, 0), ...(s.holdMinutes !== undefined ? { holdMinutes: s.holdMinutes } : {}) })) as unknown as z.ZodType<CryptoSettings>;

    const watcher = createWatcher(api, config);

    /**
     * A derivation index for a new checkout: an address handed back by the watcher (it never received
     * anything and its watch window has passed), else the merchant's next new index. Every claim is a
     * unique key (`<merchant>:<index>` or `<merchant>:<index>:g<generation>`), so two checkouts never
     * share an address and no index is skipped.
     */
    async function claimIndex(merchantId: string, sessionId: string): Promise<{ index: number; gen: number }> {
      const spare = await api.store.list<{ index: number; gen: number; used?: boolean }>('recyclable', { merchantId, limit: 20 });
      for (const r of spare.reverse()) {
        if (r.data.used) continue;
        const gen = r.data.gen + 1;
        const won = await api.store.insertOnce('addresses', `${merchantId}:${r.data.index}:g${gen}`, { merchantId, data: { sessionId, index: r.data.index, gen } });
        await api.store.update('recyclable', r.id, { ...r.data, used: true });
        if (won) return { index: r.data.index, gen };
      }
      const hint = await api.store.getByKey<{ next: number }>('next-index', merchantId);
      for (let i = hint?.data.next ?? 0; ; i++) {
        if (await api.store.insertOnce('addresses', `${merchantId}:${i}`, { merchantId, data: { sessionId, index: i } })) {
          if (hint) await api.store.update('next-index', hint.id, { next: Math.max(i + 1, hint.data.next) });
          else await api.store.insertOnce('next-index', merchantId, { merchantId, data: { next: i + 1 } });
          return { index: i, gen: 0 };
        }
      }
    }

    /** The code on core's payment (receipt, payment page, API); display only: a failure to record it does not fail the checkout. */
    async function recordCode(paymentId: string, code: string): Promise<void> {
      try {
        await api.services.checkout.setSupportReference(paymentId, code);
      } catch (err) {
        api.log.warn('crypto: could not record the verification code on the payment (the pay page still shows it)', { paymentId, error: err });
      }
    }

    api.providers.register<CryptoSettings>({
      id: 'crypto-evm',
      name: 'Crypto (stablecoins)',
      methodLabel: 'Crypto',
      captureModel: 'immediate',
      // The merchant's countdown (Settings → Payments), else the install's default.
      holdMinutes: (s) => s.holdMinutes ?? config.holdMinutes,
      merchantSettings: { schema: settingsSchema, formFragment: 'settings' },
      async start(session, s) {
        const existing = await api.store.getByKey<SessionData>('sessions', session.id);
        if (existing) {
          // A retry on the same session: a new payment attempt, the same code for support.
          await recordCode(session.paymentId, existing.data.code);
          return { redirect: `${api.baseUrl}/p/${PLUGIN_ID}/pay/${session.id}` };
        }
        const offered = allTokens.filter((x) => s.tokens.includes(x.id) && x.token.currency === session.currency);
        if (!offered.length) throw new ProviderError(`No accepted stablecoin is priced in ${session.currency}.`, { retryable: false, code: 'currency_not_supported' });
        const xpub = parseXpub(s.xpub);
        if (!xpub) throw new ProviderError('The merchant’s extended public key is not valid.', { retryable: false, code: 'not_configured' });
        const { index, gen } = await claimIndex(session.merchant.id, session.id);
        const decimals = currencyDecimals(session.currency);
        const watchUntil = new Date(Date.parse(session.expiresAt) + config.watchHours * 3_600_000).toISOString();
        const data: SessionData = {
          sessionId: session.id,
          paymentId: session.paymentId,
          index,
          gen,
          address: deriveAddress(xpub, index),
          amount: session.amount,
          currency: session.currency,
          currencyDecimals: decimals,
          expected18: to18(BigInt(session.amount), decimals).toString(),
          tokens: offered.map((x) => x.id),
          code: verificationCode(session.id),
          expiresAt: session.expiresAt,
          watchUntil,
          state: 'open',
          transfers: [],
          pending: [],
          flagged: [],
        };
        await api.store.insertOnce('sessions', session.id, { merchantId: session.merchant.id, data });
        // The verification code goes on the payment too: core shows it on the receipt, the merchant's payment page and in the API.
        await recordCode(session.paymentId, data.code);
        return { redirect: `${api.baseUrl}/p/${PLUGIN_ID}/pay/${session.id}` };
      },
      async capture() {},
      async void() {},
      async refund() {
        throw new ProviderError('Paylink holds no keys to your wallet: send the refund from your wallet to the customer.', { retryable: false, code: 'refund_from_wallet' });
      },
    });

    api.schedule.every('scan', '1m', () => watcher.scan());

    // The merchant's record of every crypto checkout: find one by the code a customer quotes.
    api.dashboard.page({
      path: '/',
      title: 'Crypto checkouts',
      // No navigation entry (most merchants never take crypto): Settings → Payments links to it.
      async render({ merchant, query }) {
        const code = typeof query.code === 'string' ? query.code.trim().toUpperCase().replace(/^([A-Z0-9]{3})([A-Z0-9]{3})$/, '$1-$2').slice(0, 7) : '';
        const page = await api.store.list<SessionData>('sessions', { merchantId: merchant.id, limit: code ? 500 : 50, ...(query.before ? { beforeId: query.before } : {}) });
        const shown = code ? page.filter((r) => r.data.code === code) : page;
        const STATUS = { open: 'Waiting', paid: 'Paid', expired: 'Expired, nothing arrived', underpaid: 'Underpaid', late: 'Paid late' } as const;
        const rows = shown.map((r) => {
          const t = trackerData(config, r);
          const end = Date.parse(r.data.expiresAt) / 1000;
          return {
            code: r.data.code,
            paymentId: r.data.paymentId,
            status: t.excess && r.data.state === 'paid' ? 'Overpaid' : STATUS[r.data.state],
            received: formatUnits(r.data.transfers.reduce((a, x) => a + BigInt(x.value18), 0n), 18, r.data.currencyDecimals),
            expected: t.expected,
            currency: r.data.currency,
            txs: r.data.transfers.map((x, i) => ({ ...t.txs[i], late: x.time > end })),
            address: r.data.address,
            index: r.data.index,
            createdAt: r.createdAt,
          };
        });
        return api.views.render('checkouts', { rows, merchant, code, next: !code && page.length === 50 ? page[page.length - 1].id : null });
      },
    });

    api.routes.use('/assets', express.static(fileURLToPath(new URL('./public', import.meta.url)), { index: false, maxAge: '1h' }));

    const load = async (req: Request) => {
      const id = String(req.params.sessionId);
      return SESSION_ID.test(id) ? api.store.getByKey<SessionData>('sessions', id) : null;
    };

    api.routes.get('/pay/:sessionId', async (req, res) => {
      const rec = await load(req);
      if (!rec) return void res.status(404).set('Cache-Control', 'no-store').type('html').send(await api.views.render('missing', { nonce: res.locals.cspNonce }));
      res.set('Cache-Control', 'no-store').type('html').send(await api.views.render('pay', await pageData(api, config, rec, typeof req.query.t === 'string' ? req.query.t : null, res)));
    });

    // The tracker, live: an event whenever what arrived changes, until the checkout is decided.
    api.routes.get('/pay/:sessionId/events', async (req, res) => {
      let rec = await load(req);
      if (!rec) return void res.status(404).end();
      res.set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' }).flushHeaders();
      let last = '';
      let stopped = false;
      const send = async () => {
        const html = await api.views.render('tracker', trackerData(config, rec!));
        if (html !== last) res.write(`event: tracker\ndata: ${html.replace(/\n/g, '')}\n\n`);
        last = html;
      };
      await send();
      const timer = setInterval(async () => {
        if (stopped) return;
        try {
          rec = await load(req);
          if (rec) await send();
          if (!rec || rec.data.state !== 'open') stop();
        } catch {
          stop();
        }
      }, 3000);
      const stop = () => {
        stopped = true;
        clearInterval(timer);
        res.end();
      };
      req.on('close', stop);
      setTimeout(stop, 15 * 60_000).unref();
    });
  },
});

/** What the tracker says: received of expected, confirmations of the newest transfer on its way. */
export function trackerData(config: Config, rec: PluginRecord<SessionData>) {
  const d = rec.data;
  const dec = d.currencyDecimals;
  const end = Date.parse(d.expiresAt) / 1000;
  const sum = (xs: { value18: string }[]) => xs.reduce((a, t) => a + BigInt(t.value18), 0n);
  const received = sum(d.transfers.filter((t) => t.time <= end));
  const expected = BigInt(d.expected18);
  const fmt = (v: bigint) => formatUnits(v, 18, dec);
  const pending = d.pending[d.pending.length - 1];
  const net = pending ? config.networks.find((n) => n.id === pending.network) : null;
  return {
    state: d.state,
    received: fmt(received),
    pendingAmount: pending ? fmt(sum(d.pending)) : null,
    confirmations: pending ? Math.min(pending.confirmations, net?.confirmations ?? 1) : null,
    needed: net?.confirmations ?? null,
    expected: fmt(expected),
    remaining: received < expected ? fmt(expected - received) : null,
    excess: received > expected ? fmt(received - expected) : null,
    late: fmt(sum(d.transfers.filter((t) => t.time > end))),
    symbol: d.currency,
    txs: d.transfers.map((t) => ({ hash: t.txHash, url: config.networks.find((n) => n.id === t.network)?.explorerTxUrl ? `${config.networks.find((n) => n.id === t.network)!.explorerTxUrl}${t.txHash}` : null })),
  };
}

async function pageData(api: PluginApi, config: Config, rec: PluginRecord<SessionData>, chosen: string | null, res: Response) {
  const d = rec.data;
  const options = config.networks.flatMap((n) => assetsOf(n).filter((t) => d.tokens.includes(tokenId(n, t))).map((t) => ({ id: tokenId(n, t), network: n, token: t })));
  const pick = options.find((o) => o.id === chosen) ?? options[0];
  const units = tokenUnits(d.amount, d.currencyDecimals, pick.token.decimals);
  const paid = d.transfers.reduce((a, t) => a + BigInt(t.value18), 0n);
  const left = BigInt(d.expected18) - paid;
  const leftUnits = left > 0n ? (left * 10n ** BigInt(pick.token.decimals)) / 10n ** 18n : 0n;
  const toPay = paid > 0n && left > 0n ? leftUnits : units;
  // EIP-681: a token transfer of exactly that amount to that address on that chain (the native coin: a plain value transfer).
  const uri = isNative(pick.token)
    ? `ethereum:${d.address}@${pick.network.chainId}?value=${toPay.toString()}`
    : `ethereum:${pick.token.address}@${pick.network.chainId}/transfer?address=${d.address}&uint256=${toPay.toString()}`;
  const session = await api.services.checkout.getSession(d.sessionId);
  return {
    nonce: res.locals.cspNonce as string,
    merchant: session?.merchant.name ?? '',
    brand: session?.merchant.brandColor ?? '#334155',
    description: session?.description ?? '',
    backUrl: session?.backUrl ?? null,
    returnUrl: session?.returnUrl ?? null,
    sessionId: d.sessionId,
    options: options.map((o) => ({ id: o.id, label: `${o.token.symbol} on ${o.network.name}`, selected: o === pick })),
    symbol: pick.token.symbol,
    network: pick.network.name,
    contract: isNative(pick.token) ? null : pick.token.address,
    amount: formatUnits(toPay, pick.token.decimals, d.currencyDecimals),
    address: d.address,
    code: d.code,
    expiresAt: d.expiresAt,
    minutesLeft: Math.max(0, Math.ceil((Date.parse(d.expiresAt) - api.now().getTime()) / 60_000)),
    // Counted down from the server's clock: the customer's may be off.
    secondsLeft: Math.max(0, Math.round((Date.parse(d.expiresAt) - api.now().getTime()) / 1000)),
    qr: await QRCode.toString(uri, { type: 'svg', margin: 1, errorCorrectionLevel: 'M' }),
    uri,
    tracker: trackerData(config, rec),
    watchHours: config.watchHours,
    // What the merchant decided on an underpaid or late payment (their payment page): the customer is told.
    decision: session?.payment?.outcome?.resolution ?? null,
  };
}
