/**
 * The vendor of test/fixtures/plugins/provider-hosted, on its own loopback port (another origin): a
 * payment page whose "Pay" button sends a signed webhook to the notify URL, then sends the customer
 * back to the return URL.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sign } from '../fixtures/plugins/provider-hosted/index.ts';
import { BUILTIN_PLUGINS_DIR, builtinSources, type PluginSource } from '../../src/core/plugins/host.ts';

/** test/fixtures/plugins/provider-hosted, loaded as an outside plugin. */
export const hostedSource: PluginSource = {
  source: 'test/fixtures/plugins/provider-hosted',
  builtin: false,
  load: () => import('../fixtures/plugins/provider-hosted/index.ts'),
};

/** Build options: the built-ins plus the hosted test provider, pointed at `vendorUrl`. */
export function withHosted(vendorUrl: string, extra: Record<string, unknown> = {}) {
  return {
    pluginSources: [...builtinSources(BUILTIN_PLUGINS_DIR), hostedSource],
    env: { PAYLINK_PLUGIN_PROVIDER_HOSTED: JSON.stringify({ vendorUrl, ...extra }) },
  };
}

export interface FakeVendor {
  origin: string;
  /** accountId → webhook secret, as the merchant configured them at the vendor. */
  accounts: Map<string, string>;
  webhooks: { status: number; body: string }[];
  close(): Promise<void>;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export async function startFakeVendor(): Promise<FakeVendor> {
  const accounts = new Map<string, string>();
  const webhooks: FakeVendor['webhooks'] = [];
  let charge = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://vendor');
    if (req.method === 'GET' && url.pathname === '/pay') {
      const q = url.searchParams;
      const hidden = ['account', 'ref', 'notify', 'return'].map((k) => `<input type="hidden" name="${k}" value="${esc(q.get(k) ?? '')}">`).join('');
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(
        `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Hosted Pay</title></head><body><main><h1>Hosted Pay checkout</h1><p>Amount ${esc(q.get('amount') ?? '')}</p><form method="post" action="/pay">${hidden}<button type="submit">Pay now</button></form></main></body></html>`,
      );
      return;
    }
    if (req.method === 'POST' && url.pathname === '/pay') {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', async () => {
        const f = new URLSearchParams(raw);
        const secret = accounts.get(f.get('account') ?? '') ?? 'unknown-account-secret';
        const body = JSON.stringify({ ref: f.get('ref'), chargeId: `ch_${++charge}` });
        const answer = await fetch(f.get('notify')!, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hosted-signature': sign(secret, body) }, body });
        webhooks.push({ status: answer.status, body: await answer.text() });
        res.writeHead(303, { Location: f.get('return')! }).end();
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    accounts,
    webhooks,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
