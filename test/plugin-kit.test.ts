// The contract test kit (paylink/plugin-testing): every built-in plugin passes it, and it catches
// plugins that break the contract. The kit builds its own host on a throwaway SQLite database (it is
// what an author runs), so this suite has no MariaDB variant.
import { TEST_XPUB } from './support/evm.ts';
import fs from 'node:fs';
import { expect } from 'chai';
import { z } from 'zod';
import { BUILTIN_PLUGINS_DIR } from '../src/core/plugins/host.ts';
import { definePlugin, ProviderError, type PluginDefinition } from '../src/plugin-api.ts';
import { checkAction, checkChannel, checkProvider, testChannel, PluginContractError, type ContractReport } from '../src/plugin-testing.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';
import { startFakeVonage, type FakeVonage } from './support/fake-vonage.ts';
import { startFakeStripe, type FakeStripe } from './support/fake-stripe.ts';

const builtin = (name: string) => new URL(`file://${BUILTIN_PLUGINS_DIR}/${name}/index.ts`);

describe('plugin contract kit', () => {
  describe('built-in plugins', () => {
    let smtp: TestSmtp;
    let vonage: FakeVonage;
    let stripe: FakeStripe;
    const stripeAccount = { secretKey: 'sk_test_kit0123456789abcdef', webhookSecret: 'whsec_kit0123456789abcdef', webhookUrl: null };
    before(async () => {
      smtp = await startSmtp();
      vonage = await startFakeVonage({ apiKey: 'kit-key', apiSecret: 'kit-secret' });
      stripe = await startFakeStripe();
      stripe.addAccount(stripeAccount);
    });
    after(async () => {
      await smtp?.close();
      await vonage?.close();
      await stripe?.close();
    });

    /** How each built-in is checked; a new built-in without an entry fails the suite. */
    const checks: Record<string, () => Promise<ContractReport>> = {
      'action-customer-tags': () =>
        checkAction(builtin('action-customer-tags'), {
          actionId: 'customer-tags',
          validSettings: [{ apply: 'tag_paid2025', remove: null }, { remove: 'tag_owes' }],
          invalidSettings: [{}, { apply: 'tag_same', remove: 'tag_same' }, { apply: 'not a tag' }],
          runSettings: async (fixture) => ({ apply: await fixture.customerTag('Paid 2026'), remove: null }),
        }),
      'channel-email': () =>
        checkChannel(builtin('channel-email'), {
          channelId: 'email',
          config: { smtpUrl: smtp.url, from: 'Kit <pay@kit.test>' },
          sampleAddress: 'ann@example.test',
          failingAddress: 'ann@example.test\r\nBcc: eve@example.test',
        }),
      'channel-outbox': () => checkChannel(builtin('channel-outbox'), { channelId: 'sms', sampleAddress: '+4915123456789' }),
      'channel-vonage': () =>
        checkChannel(builtin('channel-vonage'), {
          channelId: 'sms',
          config: { apiKey: 'kit-key', apiSecret: 'kit-secret', restHost: vonage.url, apiHost: vonage.url },
          sampleAddress: '+4915123456789',
          failingAddress: 'call me maybe',
        }),
      'provider-crypto-evm': () =>
        checkProvider(builtin('provider-crypto-evm'), {
          providerId: 'crypto-evm',
          config: {
            networks: [
              {
                id: 'kitnet',
                name: 'Kitnet',
                chainId: 1337,
                rpcUrl: 'http://127.0.0.1:9/',
                tokens: [
                  { symbol: 'USDK', address: `0x${'11'.repeat(20)}`, decimals: 6, currency: 'USD' },
                  { symbol: 'EURK', address: `0x${'22'.repeat(20)}`, decimals: 6, currency: 'EUR' },
                ],
              },
            ],
          },
          settings: { xpub: TEST_XPUB, tokens: ['kitnet:usdk', 'kitnet:eurk'] },
        }),
      'provider-sandbox': () => checkProvider(builtin('provider-sandbox'), { providerId: 'sandbox' }),
      'provider-stripe': () =>
        checkProvider(builtin('provider-stripe'), {
          providerId: 'stripe',
          config: { apiBase: stripe.origin },
          settings: { secretKey: stripeAccount.secretKey, webhookSecret: stripeAccount.webhookSecret },
        }),
    };

    for (const name of fs.readdirSync(BUILTIN_PLUGINS_DIR).sort()) {
      const check = checks[name];
      it(`${name} passes`, async () => {
        expect(check, `no kit options for the built-in ${name}: add them to this suite`).to.be.a('function');
        const report = await (check as () => Promise<ContractReport>)();
        expect(report.problems).to.deep.equal([]);
        expect(report.pluginId).to.equal(name);
      });
    }

    it('sent the channel-email sample through the SMTP server', () => {
      expect(smtp.messages.map((m) => m.envelope.to)).to.deep.include(['ann@example.test']);
    });
  });

  describe('plugins that break the contract', () => {
    const plugin = (id: string, register: PluginDefinition['register'], extra: Partial<PluginDefinition> = {}) =>
      definePlugin({ id, version: '1.0.0', apiVersion: 1, register, ...extra });

    it('reports a channel whose send answers no message id and fails with a plain Error', async () => {
      const sloppy = plugin('channel-sloppy', (api) =>
        api.channels.register({
          id: 'sloppy',
          address: 'email',
          async send(message) {
            if (message.to.startsWith('bad')) throw new Error('nope');
            return {} as { providerMessageId: string };
          },
        }),
      );
      const report = await checkChannel(sloppy, { channelId: 'sloppy', sampleAddress: 'a@b.test', failingAddress: 'bad@b.test' });
      expect(report.problems).to.have.length(2);
      expect(report.problems[0]).to.match(/providerMessageId/);
      expect(report.problems[1]).to.match(/ProviderError/);
    });

    it('reports the channel id a plugin did not register, naming what it did register', async () => {
      const other = plugin('channel-other', (api) => api.channels.register({ id: 'pager', address: 'phone', send: async () => ({ providerMessageId: 'x' }) }));
      const report = await checkChannel(other, { channelId: 'ntfy', sampleAddress: 'topic' });
      expect(report.problems).to.deep.equal(['registers no channel "ntfy" (it registered: pager)']);
    });

    it('lists the failure path as not checked when no failing address is given', async () => {
      const fine = plugin('channel-fine', (api) =>
        api.channels.register({
          id: 'fine',
          address: 'phone',
          async send() {
            throw new ProviderError('down', { retryable: true });
          },
        }),
      );
      const report = await checkChannel(fine, { channelId: 'fine', sampleAddress: '+4915123456789' });
      expect(report.problems).to.deep.equal(['send to the sample address failed: ProviderError: down']);
      expect(report.notChecked[0]).to.match(/failingAddress/);
    });

    it('reports an action whose schema accepts invalid settings and whose run throws', async () => {
      const lax = plugin('action-lax', (api) =>
        api.actions.register({
          id: 'lax',
          label: 'Lax',
          settings: z.object({ url: z.string() }),
          async run() {
            throw new Error('boom');
          },
        }),
      );
      const report = await checkAction(lax, { actionId: 'lax', validSettings: [{ url: 'https://x.test' }], invalidSettings: [{ url: 'still a string' }] });
      expect(report.problems).to.deep.equal(['settings schema accepts invalidSettings[0] ({"url":"still a string"})', 'first run failed: Error: boom']);
    });

    it('reports an action whose repeated run fails (not idempotent per event)', async () => {
      const seen = new Set<string>();
      const once = plugin('action-once', (api) =>
        api.actions.register({
          id: 'once',
          label: 'Once',
          settings: z.object({}),
          async run({ event }) {
            if (seen.has(event.id)) throw new Error(`already ran for ${event.id}`);
            seen.add(event.id);
          },
        }),
      );
      const report = await checkAction(once, { actionId: 'once', validSettings: [{}], invalidSettings: [] });
      expect(report.problems).to.have.length(1);
      expect(report.problems[0]).to.match(/^repeated run with the same event failed: Error: already ran for evt_/);
    });

    it('reports a provider that redirects to an origin it does not declare, and bad checkoutOrigins', async () => {
      const hosted = plugin('provider-hosted', (api) =>
        api.providers.register({
          id: 'hosted',
          name: 'Hosted',
          checkoutOrigins: () => ['https://pay.hosted.test/path'],
          start: async () => ({ redirect: 'https://checkout.hosted.test/s/1' }),
          capture: async () => {},
          void: async () => {},
          refund: async () => {},
        } as never),
      );
      const report = await checkProvider(hosted, { providerId: 'hosted' });
      expect(report.problems).to.deep.equal([
        'checkoutOrigins lists "https://pay.hosted.test/path", which is not an origin such as https://pay.example.com',
        "start redirects to https://checkout.hosted.test, which checkoutOrigins does not list: the pay page's CSP would block it",
      ]);
    });

    it('starts a checkout with a plan and with a free trial for a provider that says it bills subscriptions', async () => {
      const billing = (fails: boolean) =>
        plugin('provider-plans', (api) =>
          api.providers.register({
            id: 'plans',
            name: 'Plans',
            subscriptions: true,
            start: async (session: { recurring?: { trialDays: number | null } | null; amount: number }) => {
              if (fails && session.recurring?.trialDays) throw new Error('no trials here');
              if (fails && session.recurring) return { nothing: true };
              return { render: '<p>pay</p>' };
            },
            capture: async () => {},
            void: async () => {},
            refund: async () => {},
          } as never),
        );
      const bad = await checkProvider(billing(true), { providerId: 'plans' });
      expect(bad.problems).to.deep.equal([
        'start with a monthly plan must answer { redirect: url } or { render: html }, got {"nothing":true}',
        'start with a free trial (amount 0) failed: Error: no trials here',
      ]);
      const good = await checkProvider(billing(false), { providerId: 'plans' });
      expect(good.problems).to.deep.equal([]);
      expect(good.notChecked.join(' ')).to.include('renewals and cancellations');
    });

    it('passes a provider that redirects to a declared origin', async () => {
      const hosted = plugin('provider-declared', (api) =>
        api.providers.register({
          id: 'declared',
          name: 'Declared',
          merchantSettings: { schema: z.object({ account: z.string().min(1) }), secrets: ['account'] },
          checkoutOrigins: (s: { account: string }) => [`https://${s.account}.hosted.test`],
          start: async (_session: unknown, s: { account: string }) => ({ redirect: `https://${s.account}.hosted.test/s/1` }),
          capture: async () => {},
          void: async () => {},
          refund: async () => {},
        } as never),
      );
      const report = await checkProvider(hosted, { providerId: 'declared', settings: { account: 'acme' } });
      expect(report.problems).to.deep.equal([]);
      const rejected = await checkProvider(hosted, { providerId: 'declared', settings: { account: '' } });
      expect(rejected.problems[0]).to.match(/^merchantSettings.schema rejects the given settings: account:/);
    });

    it('passes a captureModel that is a function of the settings, and reports one that answers neither model', async () => {
      const provider = (captureModel: (s: { methods: string }) => string) =>
        plugin('provider-modal', (api) =>
          api.providers.register({
            id: 'modal',
            name: 'Modal',
            merchantSettings: { schema: z.object({ methods: z.string() }) },
            captureModel,
            holdMinutes: 45,
            start: async () => ({ redirect: 'http://127.0.0.1/pay' }),
            capture: async () => {},
            void: async () => {},
            refund: async () => {},
          } as never),
        );
      const ok = await checkProvider(provider((s) => (s.methods === 'cards' ? 'manual' : 'immediate')), { providerId: 'modal', settings: { methods: 'cards,bank' } });
      expect(ok.problems.filter((p) => /captureModel|holdMinutes/.test(p))).to.deep.equal([]);
      const bad = await checkProvider(provider(() => 'later'), { providerId: 'modal', settings: { methods: 'cards' } });
      expect(bad.problems).to.include(`captureModel(settings) must answer 'manual' or 'immediate', got "later"`);
    });

    it('reports what stops the host at boot (apiVersion, config) and a register() that throws', async () => {
      const future = definePlugin({ id: 'channel-future', version: '1.0.0', apiVersion: 2, register() {} });
      expect(await checkChannel(future, { channelId: 'x', sampleAddress: 'y' })).to.deep.equal({
        pluginId: 'channel-future',
        problems: ['stops the host at boot: "channel-future" needs plugin apiVersion 2; this Paylink provides 1'],
        notChecked: [],
      });
      const configured = definePlugin({ id: 'channel-configured', version: '1.0.0', apiVersion: 1, config: z.object({ token: z.string() }), register() {} });
      const bad = await checkChannel(configured, { channelId: 'x', sampleAddress: 'y', config: { token: 42 } });
      expect(bad.problems).to.have.length(1);
      expect(bad.problems[0]).to.match(/^stops the host at boot: invalid config for "channel-configured" \(PAYLINK_PLUGIN_CHANNEL_CONFIGURED\): token:/);
      const throws = plugin('channel-throws', () => {
        throw new Error('no token');
      });
      expect((await checkChannel(throws, { channelId: 'x', sampleAddress: 'y' })).problems).to.deep.equal(['register() failed, so the host disables the plugin: no token']);
    });

    it('reports a module that cannot be imported', async () => {
      const report = await checkProvider('/nonexistent/paylink-provider-gone/index.ts', { providerId: 'gone' });
      expect(report.pluginId).to.equal(null);
      expect(report.problems).to.have.length(1);
      expect(report.problems[0]).to.match(/^cannot be imported: .*paylink-provider-gone/);
    });

    it('testChannel throws one error naming every problem', async () => {
      const silent = plugin('channel-silent', () => {});
      try {
        await testChannel(silent, { channelId: 'silent', sampleAddress: 'x' });
        expect.fail('testChannel should have thrown');
      } catch (err) {
        expect(err).to.be.instanceOf(PluginContractError);
        expect((err as Error).message).to.equal('channel-silent does not meet the plugin contract:\n  - registers no channel "silent" (it registered: nothing)');
      }
    });
  });
});
