// Plugins as third parties ship them: folders outside the repository, packed with `npm pack` and
// installed by package name into a site's node_modules — with no zod and no Paylink of their own —
// import `paylink/plugin-api` (and `z` from it) and register in the host; the documented tsconfig
// type-checks them; the contract kit checks them where they are installed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, type TestEnv } from './support/harness.ts';
import { BUILTIN_PLUGINS_DIR, builtinSources, externalSource } from '../src/core/plugins/host.ts';
import { checkAction, checkChannel, checkProvider } from '../src/plugin-testing.ts';
import { packAndInstall, pluginManifest } from './support/plugin-packages.ts';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const TSC = path.join(REPO, 'node_modules/.bin/tsc');

/** package.json of a plugin as docs/plugins.md describes it. */
const manifest = (name: string, extra?: Record<string, unknown>) => JSON.stringify(pluginManifest(name, extra));

const PLUGINS: Record<string, Record<string, string>> = {
  // A channel in TypeScript.
  'paylink-channel-kitpush': {
    'package.json': manifest('paylink-channel-kitpush'),
    'index.ts': `import { definePlugin, ProviderError, z } from 'paylink/plugin-api';

export default definePlugin({
  id: 'channel-kitpush',
  version: '1.0.0',
  apiVersion: 1,
  config: z.object({ prefix: z.string().default('push') }),
  register(api, config) {
    api.channels.register({
      id: 'kitpush',
      address: 'phone',
      async send(message) {
        if (message.to === '+15550000000') throw new ProviderError('no device for this number', { retryable: false, code: 'kitpush_no_device' });
        const record = await api.store.insert('pushes', { merchantId: message.merchant.id, data: { to: message.to, text: message.text } });
        return { providerMessageId: \`\${config.prefix}-\${record.id}\` };
      },
    });
  },
});
`,
  },
  // An action in JavaScript (an ES module).
  'paylink-action-kitnotify': {
    'package.json': manifest('paylink-action-kitnotify', { type: 'module', exports: './index.js' }),
    'index.js': `import { definePlugin, z } from 'paylink/plugin-api';

export default definePlugin({
  id: 'action-kitnotify',
  version: '1.0.0',
  apiVersion: 1,
  register(api) {
    api.actions.register({
      id: 'kitnotify',
      label: 'Notify a webhook',
      settings: z.object({ webhookUrl: z.url({ protocol: /^https?$/ }) }),
      async run({ event, merchant }) {
        const done = await api.store.list('runs', { merchantId: merchant.id, limit: 100 });
        if (done.some((r) => r.data.event === event.id)) return;
        await api.store.insert('runs', { merchantId: merchant.id, data: { event: event.id } });
      },
    });
  },
});
`,
  },
  // A hosted provider in TypeScript, with a public route (where its webhook would go), its entry in src/.
  'paylink-provider-kithosted': {
    'package.json': manifest('paylink-provider-kithosted', { type: 'module', exports: './src/provider.ts' }),
    'src/provider.ts': `import { definePlugin, PLUGIN_API_VERSION, z, type PaymentProvider } from 'paylink/plugin-api';

const CHECKOUT = 'https://checkout.kithosted.test';

export default definePlugin({
  id: 'provider-kithosted',
  version: '1.0.0',
  apiVersion: 1,
  config: z.object({}).loose(),
  register(api) {
    const provider = {
      id: 'kithosted',
      name: 'Kit Hosted',
      checkoutOrigins: () => [CHECKOUT],
      async start(session) {
        // A customer record's saved profile (apiVersion 1 additions) is offered again.
        const saved = session.customer.savedProfile ? \`?profile=\${encodeURIComponent(session.customer.savedProfile.ref)}\` : '';
        // A plan (apiVersion 1 subscriptions): what the vendor would bill each period.
        const plan = session.recurring ? \`\${saved ? '&' : '?'}plan=\${session.recurring.interval}-\${session.recurring.intervalCount}-\${session.recurring.renewalAmount}\` : '';
        return { redirect: \`\${CHECKOUT}/s/\${encodeURIComponent(session.id)}\${saved}\${plan}\` };
      },
      async capture() {},
      async void() {},
      async refund() {},
      async forgetProfile() {},
      subscriptions: true,
      async cancelSubscription() {},
    } satisfies PaymentProvider & { checkoutOrigins(): string[] };
    api.providers.register(provider);
    api.routes.get('/ping', (_req, res) => {
      res.json({ plugin: api.id, apiVersion: PLUGIN_API_VERSION, zod: typeof z.object });
    });
  },
});
`,
  },
  // A CommonJS plugin (no "type": "module"): require() resolves paylink/plugin-api too.
  'paylink-action-kitlegacy': {
    'package.json': manifest('paylink-action-kitlegacy', { main: 'index.js' }),
    'index.js': `const { definePlugin, z } = require('paylink/plugin-api');

module.exports = definePlugin({
  id: 'action-kitlegacy',
  version: '1.0.0',
  apiVersion: 1,
  register(api) {
    api.actions.register({ id: 'kitlegacy', label: 'Legacy', settings: z.object({ note: z.string().max(20) }), async run() {} });
  },
});
`,
  },
};
const NAMES = Object.keys(PLUGINS);

let workDir: string;
/** Where the plugins were written (outside the repository). */
const folder = (name: string) => path.join(workDir, 'src', name);
/** A site that installed them by package name. */
const site = () => path.join(workDir, 'site');
const installed = (name: string) => path.join(site(), 'node_modules', name);

describe('plugin packaging', () => {
  before(async function () {
    this.timeout(120_000);
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-plugins-'));
    expect(path.relative(REPO, workDir).startsWith('..')).to.equal(true);
    for (const [name, files] of Object.entries(PLUGINS)) {
      fs.mkdirSync(folder(name), { recursive: true });
      for (const [file, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(folder(name), file)), { recursive: true });
        fs.writeFileSync(path.join(folder(name), file), text);
      }
    }
    await packAndInstall(NAMES.map(folder), workDir, site());
  });
  after(() => {
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  });

  it('installs each plugin by package name with no zod or paylink of its own', () => {
    expect(fs.readdirSync(path.join(site(), 'node_modules')).filter((n) => !n.startsWith('.')).sort()).to.deep.equal([...NAMES].sort());
  });

  forEachTarget('plugins installed outside the repository', (target) => {
    let env: TestEnv;
    before(async () => {
      // By package name, resolved from the site's folder, next to the built-ins.
      env = await build(target, { pluginSources: [...builtinSources(BUILTIN_PLUGINS_DIR), ...NAMES.map((n) => externalSource(n, site()))] });
    });
    after(() => env?.close());

    it('loads every package by name and registers what it provides', () => {
      const external = env.rt.plugins.list().filter((p) => !p.builtin);
      expect(external.map((p) => [p.source, p.id, p.status, p.error])).to.deep.equal([
        ['paylink-channel-kitpush', 'channel-kitpush', 'active', null],
        ['paylink-action-kitnotify', 'action-kitnotify', 'active', null],
        ['paylink-provider-kithosted', 'provider-kithosted', 'active', null],
        ['paylink-action-kitlegacy', 'action-kitlegacy', 'active', null],
      ]);
      const { channels, actions, providers } = env.rt.registries;
      expect(channels.ownerOf('kitpush')).to.equal('channel-kitpush');
      expect(actions.ownerOf('kitnotify')).to.equal('action-kitnotify');
      expect(actions.ownerOf('kitlegacy')).to.equal('action-kitlegacy');
      expect(providers.ownerOf('kithosted')).to.equal('provider-kithosted');
    });

    it("validates with the z the plugin took from paylink/plugin-api", () => {
      const settings = env.rt.registries.actions.get('kitnotify')!.settings;
      expect(settings.safeParse({ webhookUrl: 'https://hooks.example.test/x' }).success).to.equal(true);
      expect(settings.safeParse({ webhookUrl: 'ftp://hooks.example.test/x' }).success).to.equal(false);
    });

    it('offers a plan through the installed provider that bills subscriptions, with what renews', async () => {
      const { merchant } = await env.rt.services.merchants.signUp({ name: 'Kit Club', handle: 'kit-club', email: 'kit@club.test', password: 'correct horse battery' });
      await env.rt.services.providers.update(merchant.key, 'kithosted', { enabled: true });
      await env.rt.services.providers.update(merchant.key, 'sandbox', { enabled: false });
      const plan = await env.rt.services.products.create(merchant.key, { name: 'Monthly box', price: 2500, currency: 'EUR', recurring: { interval: 'month', interval_count: 1 } });
      const link = await env.rt.services.links.create(merchant, { type: 'items', name: 'Box club', items: [{ product_id: plan.id, quantity: 1 }] });
      const res = await supertest(env.app).post(`/kit-club/${link.path}`).type('form').send({ name: 'Ann', email: 'ann@example.test', plan: plan.id }).expect(303);
      expect(res.headers.location).to.match(/^https:\/\/checkout\.kithosted\.test\/s\/cs_[^?]+\?plan=month-1-2500$/);
      expect(typeof env.rt.registries.providers.get('kithosted')!.cancelSubscription).to.equal('function');
    });

    it("serves the provider's public route under /p/<plugin-id>/", async () => {
      const res = await supertest(env.app).get('/p/provider-kithosted/ping').expect(200);
      expect(res.body).to.deep.equal({ plugin: 'provider-kithosted', apiVersion: 1, zod: 'function' });
    });
  });

  forEachTarget('plugins named by folder in PAYLINK_PLUGINS', (target) => {
    let env: TestEnv;
    before(async () => {
      env = await build(target, { env: { PAYLINK_PLUGINS: NAMES.map(folder).join(','), PAYLINK_PLUGIN_CHANNEL_KITPUSH: '{"prefix":"kp"}' } });
    });
    after(() => env?.close());

    it('loads them from their folders with their settings, next to the built-ins', async () => {
      const external = env.rt.plugins.list().filter((p) => !p.builtin);
      expect(external.map((p) => [p.id, p.status])).to.deep.equal([
        ['channel-kitpush', 'active'],
        ['action-kitnotify', 'active'],
        ['provider-kithosted', 'active'],
        ['action-kitlegacy', 'active'],
      ]);
      expect(env.rt.plugins.list().filter((p) => p.builtin && p.status !== 'active')).to.deep.equal([]);
      const { merchant } = await env.rt.services.merchants.signUp({ name: 'Kit Shop', handle: 'kit-shop', email: 'kit@shop.test', password: 'correct horse battery' });
      const message = { id: 'dlv_1', merchant: { id: merchant.id, name: merchant.name, brandColor: '#000000' }, to: '+4915123456789', text: 'hi', kind: 'test', linkUrl: null };
      const sent = await env.rt.registries.channels.get('kitpush')!.send(message as never);
      expect(sent.providerMessageId).to.match(/^kp-/); // its config came from PAYLINK_PLUGIN_CHANNEL_KITPUSH
    });
  });

  describe('the contract kit on the installed packages', () => {
    it('passes the channel', async () => {
      const report = await checkChannel(installed('paylink-channel-kitpush'), { channelId: 'kitpush', sampleAddress: '+4915123456789', failingAddress: '+15550000000' });
      expect(report).to.deep.equal({ pluginId: 'channel-kitpush', problems: [], notChecked: [] });
    });

    it('passes the action', async () => {
      const report = await checkAction(installed('paylink-action-kitnotify'), {
        actionId: 'kitnotify',
        validSettings: [{ webhookUrl: 'https://hooks.example.test/paid' }],
        invalidSettings: [{}, { webhookUrl: 'not a url' }],
      });
      expect(report.problems).to.deep.equal([]);
    });

    it('passes the provider', async () => {
      const report = await checkProvider(installed('paylink-provider-kithosted'), { providerId: 'kithosted' });
      expect(report.problems).to.deep.equal([]);
    });
  });

  it("runs the author's own mocha test of the kit in the plugin's folder, with the documented preload", async function () {
    this.timeout(120_000);
    const dir = folder('paylink-action-kitnotify');
    fs.mkdirSync(path.join(dir, 'test'));
    fs.writeFileSync(
      path.join(dir, 'test/contract.test.js'),
      `import { testAction } from 'paylink/plugin-testing';

describe('action-kitnotify', () => {
  it('meets the action contract', () =>
    testAction(new URL('../index.js', import.meta.url), {
      actionId: 'kitnotify',
      validSettings: [{ webhookUrl: 'https://hooks.example.test/paid' }],
      invalidSettings: [{ webhookUrl: 'ftp://nope' }],
    }));
});
`,
    );
    const node = (args: string[]) => run(process.execPath, ['--import', path.join(REPO, 'node_modules/tsx/dist/esm/index.mjs'), '--import', path.join(REPO, 'src/plugin-register.ts'), path.join(REPO, 'node_modules/mocha/bin/mocha.js'), ...args], { cwd: dir });
    const passed = await node(['--timeout', '60000', 'test/*.test.js']);
    expect(passed.stdout).to.match(/1 passing/);
    // The same test fails when the settings it calls invalid are accepted.
    fs.writeFileSync(path.join(dir, 'test/contract.test.js'), fs.readFileSync(path.join(dir, 'test/contract.test.js'), 'utf8').replace("'ftp://nope'", "'https://fine.example.test'"));
    const failed = await node(['--timeout', '60000', 'test/*.test.js']).then(() => null, (err: { stdout: string }) => err);
    expect(failed?.stdout).to.match(/settings schema accepts invalidSettings\[0\]/);
  });

  describe('type-checking with docs/plugin-tsconfig.json', () => {
    /** The documented tsconfig, with ../paylink pointing at this checkout. */
    const tsconfigFor = (dir: string) => fs.readFileSync(path.join(REPO, 'docs/plugin-tsconfig.json'), 'utf8').replaceAll('../paylink/', `${path.relative(dir, REPO)}/`);

    it('checks a plugin and its contract test, and fails on a type error', async function () {
      this.timeout(180_000); // tsc checks the plugin and the host source it imports
      const dir = folder('paylink-channel-kitpush');
      fs.writeFileSync(path.join(dir, 'tsconfig.json'), tsconfigFor(dir));
      fs.writeFileSync(
        path.join(dir, 'contract.test.ts'),
        `import { test } from 'node:test';
import { testChannel } from 'paylink/plugin-testing';

test('meets the channel contract', async () => {
  await testChannel(new URL('./index.ts', import.meta.url), { channelId: 'kitpush', sampleAddress: '+4915123456789' });
});
`,
      );
      await run(TSC, ['--noEmit', '-p', dir]);

      fs.writeFileSync(path.join(dir, 'index.ts'), fs.readFileSync(path.join(dir, 'index.ts'), 'utf8').replace('apiVersion: 1,', "apiVersion: '1',"));
      const failed = await run(TSC, ['--noEmit', '-p', dir]).then(() => null, (err: { stdout: string }) => err);
      expect(failed?.stdout).to.match(/index\.ts\(\d+,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
    });
  });
});
