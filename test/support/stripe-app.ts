// The app served on loopback (the fake Stripe posts its webhooks to it) next to a fake Stripe the
// real SDK is pointed at, and merchants who connected their own Stripe account — shared by the
// provider-stripe suites.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { build, signUp, type Account, type TestEnv } from './harness.ts';
import { apiClient, type ApiCall } from './api.ts';
import { startFakeStripe, type FakeStripe, type FakeStripeAccount } from './fake-stripe.ts';
import type { Target } from './targets.ts';
import type { Merchant } from '../../src/features/merchants/index.ts';

/** A Stripe-looking key or secret: `prefix` + 36 random hex characters. */
export const stripeKey = (prefix: string) => `${prefix}${randomBytes(18).toString('hex')}`;

export interface StripeApp {
  fake: FakeStripe;
  env: TestEnv;
  /** `http://127.0.0.1:<port>` of the served app. */
  origin: string;
}

/**
 * Starts the fake Stripe and the app (in a `before` of the calling describe; both closed `after`).
 * `plugin` adds to provider-stripe's install settings (`apiBase` is always the fake's); `env` adds to
 * the app's environment, read as the app starts (e.g. a test SMTP server's URL, started before).
 */
export function useStripeApp(target: Target, opts: { plugin?: (fake: FakeStripe) => Record<string, unknown>; env?: () => Record<string, string> } = {}): StripeApp {
  const app = {} as StripeApp;
  let server: http.Server | undefined;
  before(async () => {
    app.fake = await startFakeStripe();
    app.env = await build(target, { env: { ...opts.env?.(), PAYLINK_PLUGIN_PROVIDER_STRIPE: JSON.stringify({ apiBase: app.fake.origin, ...opts.plugin?.(app.fake) }) } });
    server = http.createServer(app.env.app);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    app.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await app.env?.close();
    await app.fake?.close();
  });
  return app;
}

export interface StripeShop {
  owner: Account;
  merchant: Merchant;
  call: ApiCall;
  account: FakeStripeAccount;
}

/** A merchant who connected their own Stripe account in Settings → Payments and turned the sandbox off. */
export async function stripeShop(app: StripeApp, methods: 'card' | 'all' = 'card'): Promise<StripeShop> {
  const owner = await signUp(app.env.app);
  const merchant = (await app.env.rt.services.merchants.getByHandle(owner.handle))!;
  const { secret } = await app.env.rt.services.apiKeys.create(merchant, { name: 'test' });
  const call = apiClient(app.env.app, secret);
  const account = { secretKey: stripeKey('sk_test_'), webhookSecret: stripeKey('whsec_'), webhookUrl: `${app.origin}/p/provider-stripe/webhook/${merchant.id}` };
  app.fake.addAccount(account);
  await call('patch', '/providers/stripe', { enabled: true, settings: { secretKey: account.secretKey, webhookSecret: account.webhookSecret, methods } }).expect(200);
  await call('patch', '/providers/sandbox', { enabled: false }).expect(200);
  return { owner, merchant, call, account };
}
