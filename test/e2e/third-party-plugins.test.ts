// The plugin contract's "done when": three plugins written from docs/plugins.md and the exported
// types alone — an ntfy channel with its own id, a chat-webhook action with its own settings, and a
// hosted card provider on another origin that confirms by signed webhook — each packed in its own
// folder outside the repository and installed by npm package name into a site (no zod, express or
// Paylink of their own), then used end to end in real Chromium: the merchant sets the provider up
// in Settings → Payments, gives a customer an ntfy topic, enables the action on a link from the link
// form (and on another from the API), sends the link by ntfy; the customer opens it from the push,
// pays on the vendor's page, and the action posts the payment. Bad plugin input gets clear errors.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget, TARGETS } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { apiClient, expectFieldErrors } from '../support/api.ts';
import { waitFor } from '../support/wait.ts';
import { DESKTOP, PHONE, serve, signUpInBrowser, useBrowser, type ServedEnv } from '../support/browser.ts';
import { startFakeNtfy, type FakeNtfy } from '../support/fake-ntfy.ts';
import { startFakeVendor, type FakeVendor } from '../support/fake-hosted-vendor.ts';
import { packAndInstall, pluginManifest } from '../support/plugin-packages.ts';
import { BUILTIN_PLUGINS_DIR, builtinSources, externalSource } from '../../src/core/plugins/host.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/plugins/', import.meta.url));
const SECRET = 'whsec_thirdparty_0123456789';

/** Fixture folder → the npm package it is published as (the files a plugin author ships). */
const PACKAGES = [
  { name: 'paylink-channel-ntfy', fixture: 'channel-ntfy', files: ['index.ts'] },
  { name: 'paylink-action-hookpost', fixture: 'action-hookpost', files: ['index.ts', 'views/settings.eta'] },
  { name: 'paylink-provider-hosted', fixture: 'provider-hosted', files: ['index.ts'] },
];

/** The merchant's chat webhook: records what the action posts. */
async function startChatWebhook() {
  const received: Record<string, any>[] = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      received.push(JSON.parse(data));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('third-party plugins installed by npm package name', function () {
  let workDir = '';
  const site = () => path.join(workDir, 'site');

  before(async function () {
    this.timeout(120_000);
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-third-party-'));
    const folders: string[] = [];
    for (const pkg of PACKAGES) {
      const dir = path.join(workDir, pkg.name);
      for (const file of pkg.files) {
        fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
        fs.copyFileSync(path.join(FIXTURES, pkg.fixture, file), path.join(dir, file));
      }
      fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ ...pluginManifest(pkg.name), files: pkg.files }, null, 2));
      folders.push(dir);
    }
    await packAndInstall(folders, workDir, site(), 'clay-studio-paylink');
    for (const dir of folders) fs.rmSync(dir, { recursive: true }); // only what npm shipped remains
  });
  after(() => {
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  });

  it('installs the three packages alone: nothing of zod, express or Paylink comes with them', () => {
    expect(path.relative(fileURLToPath(new URL('../..', import.meta.url)), workDir).startsWith('..'), 'outside the repository').to.equal(true);
    expect(fs.readdirSync(path.join(site(), 'node_modules')).filter((n) => !n.startsWith('.')).sort()).to.deep.equal(PACKAGES.map((p) => p.name).sort());
    const ntfy = fs.readFileSync(path.join(site(), 'node_modules/paylink-channel-ntfy/index.ts'), 'utf8');
    expect(ntfy.split('\n').length, 'a channel in 60 lines or fewer').to.be.at.most(60);
    for (const p of PACKAGES) {
      const text = fs.readFileSync(path.join(site(), 'node_modules', p.name, 'index.ts'), 'utf8');
      const modules = [...text.matchAll(/^import [^;]*? from '([^']+)';$/gm)].map((m) => m[1]);
      expect(modules.filter((m) => !m.startsWith('node:')), p.name).to.deep.equal(['paylink/plugin-api']);
    }
  });

  forEachTarget('e2e: the three installed plugins end to end', (target) => {
    const browser = useBrowser();
    let env: ServedEnv;
    let ntfy: FakeNtfy;
    let vendor: FakeVendor;
    let chat: Awaited<ReturnType<typeof startChatWebhook>>;

    before(async function () {
      this.timeout(60_000);
      [ntfy, vendor, chat] = await Promise.all([startFakeNtfy(), startFakeVendor(), startChatWebhook()]);
      env = await serve(target, {
        pluginSources: [...builtinSources(BUILTIN_PLUGINS_DIR), ...PACKAGES.map((p) => externalSource(p.name, site()))],
        env: {
          PAYLINK_PLUGIN_CHANNEL_NTFY: JSON.stringify({ server: ntfy.url }),
          PAYLINK_PLUGIN_PROVIDER_HOSTED: JSON.stringify({ vendorUrl: vendor.origin }),
        },
      });
    });
    after(async () => {
      await env?.close();
      await Promise.all([ntfy?.close(), vendor?.close(), chat?.close()]);
    });

    it('loads each package by its name, next to the built-ins', () => {
      const external = env.rt.plugins.list().filter((p) => !p.builtin);
      expect(external.map((p) => [p.source, p.id, p.status, p.error])).to.deep.equal([
        ['paylink-channel-ntfy', 'channel-ntfy', 'active', null],
        ['paylink-action-hookpost', 'action-hookpost', 'active', null],
        ['paylink-provider-hosted', 'provider-hosted', 'active', null],
      ]);
    });

    it('sets up the provider, sends a link with the action by ntfy, and the customer pays on the vendor’s page', async function () {
      this.timeout(120_000);
      const viewport = target === TARGETS[0] ? PHONE : DESKTOP;
      const tab = await browser().newPage({ viewport });
      const m = tab.page;
      const handle = uniqueHandle('clay');
      await signUpInBrowser(m, env.origin, { name: 'Clay Studio', handle });
      const merchant = (await env.rt.services.merchants.getByHandle(handle))!;

      // Settings → Payments: the vendor does not know the first account id (by the field, 422).
      await m.goto(`${env.origin}/app/settings/payments`);
      const hosted = m.locator('#provider-hosted');
      await hosted.locator('#f-hosted-enabled').check();
      await hosted.locator('#f-hosted-accountId').fill('acct_unknown');
      await hosted.locator('#f-hosted-webhookSecret').fill(SECRET);
      tab.expectError({ status: 422, path: '/app/settings/payments/hosted' });
      await hosted.getByRole('button', { name: /^Save/ }).click();
      await m.locator('#provider-hosted #f-hosted-accountId-error', { hasText: 'Hosted Pay has no account with this id.' }).waitFor();
      await m.locator('#provider-hosted #f-hosted-accountId').fill('acct_clay');
      await m.locator('#provider-hosted #f-hosted-webhookSecret').fill(SECRET);
      await m.locator('#provider-hosted').getByRole('button', { name: /^Save/ }).click();
      await m.locator('#provider-hosted .badge', { hasText: 'On' }).waitFor();
      vendor.accounts.set('acct_clay', SECRET);

      // A customer reachable only by ntfy.
      await m.goto(`${env.origin}/app/customers/new`);
      await m.getByLabel('Name').fill('Jane Doe');
      await m.getByLabel('ntfy topic').fill('clay-jane');
      await m.getByRole('button', { name: 'Add customer' }).click();
      await m.locator('#address-ntfy_topic').getByText('clay-jane').waitFor();

      // The link form: the action's own fields, its own check by the field, then saved.
      await m.goto(`${env.origin}/app/links/new?type=amount`);
      await m.getByLabel('Name', { exact: true }).fill('Throwing class');
      await m.getByLabel('Amount').fill('65.00');
      await m.locator('#f-action-action-hookpost').check();
      await m.locator('#f-action-action-hookpost-webhookUrl').fill(chat.url);
      await m.locator('#f-action-action-hookpost-channel').fill(`#${handle}`);
      tab.expectError({ status: 422, path: '/app/links' });
      await m.getByRole('button', { name: 'Create link' }).click();
      await m.locator('#f-action-action-hookpost-channel-error', { hasText: 'That channel is reserved: choose another.' }).waitFor();
      await m.locator('#f-action-action-hookpost-channel').fill('#classes');
      await m.getByRole('button', { name: 'Create link' }).click();
      await m.waitForURL(/\/app\/links\/lnk_/);
      const link = await env.rt.services.links.get(merchant, /\/app\/links\/(lnk_\w+)/.exec(m.url())![1]);

      // Sent by ntfy from the link page's Send panel.
      const panel = m.locator('#link-send');
      await panel.getByRole('checkbox', { name: /Jane Doe/ }).check();
      await panel.locator('#send-channels').getByRole('checkbox', { name: 'ntfy' }).check();
      await panel.getByRole('button', { name: 'Send link' }).click();
      await panel.getByText('Sent to Jane Doe.').waitFor();
      await env.rt.jobs.drain();
      await waitFor(() => ntfy.messages.length > 0, { timeout: 5_000, message: 'the ntfy push' });
      const push = ntfy.messages[0];
      // The push carries the link, signed for Jane so her payment is attributed to her record.
      expect([push.topic, push.tags, push.title]).to.deep.equal(['clay-jane', 'initial', 'Clay Studio']);
      expect(push.click!.startsWith(`${env.rt.services.links.urlFor(link, merchant)}?c=cus_`), push.click!).to.equal(true);
      const customerId = new URL(push.click!).searchParams.get('c')!.split('.')[0];
      tab.assertClean();
      await tab.close();

      // Jane opens the push, picks Card, pays on the vendor's origin; its signed webhook confirms.
      const payer = await browser().newPage({ viewport });
      const p = payer.page;
      await p.goto(push.click!);
      await p.getByRole('radio', { name: 'Card', exact: true }).check();
      await p.getByLabel('Your name').fill('Jane Doe');
      await p.getByLabel('Email').fill('jane@example.test');
      await p.getByRole('button', { name: /^Pay / }).click();
      await p.waitForURL(`${vendor.origin}/pay?**`);
      await p.getByRole('button', { name: 'Pay now' }).click();
      await p.waitForURL(/\/receipt\/pay_\w+\?k=[\w-]{22}$/);
      await p.getByRole('heading', { level: 1, name: 'Payment successful' }).waitFor();
      await payer.screenshot(`third-party-receipt-${viewport.width}-${target.name}`);
      payer.assertClean();
      await payer.close();
      expect(vendor.webhooks.at(-1)).to.deep.equal({ status: 200, body: '{"status":"paid"}' });

      // The action posted the payment, once, with the payer as entered.
      await env.rt.jobs.drain();
      await waitFor(() => chat.received.length > 0, { timeout: 5_000, message: 'the chat webhook' });
      await env.rt.jobs.drain();
      expect(chat.received.map(({ event: _e, ...rest }) => rest)).to.deep.equal([
        { channel: '#classes', merchant: merchant.id, link: 'Throwing class', payer: { name: 'Jane Doe', email: 'jane@example.test', phone: null }, customer: customerId, mention: null },
      ]);
      const paid = await env.rt.services.links.get(merchant, link.id);
      expect([paid.paidCount, paid.revenue]).to.deep.equal([1, 6500]);
    });

    it('enables the action on a link from the API; bad settings and a foreign payment get clear errors', async () => {
      const handle = uniqueHandle('clayapi');
      const { merchant } = await env.rt.services.merchants.signUp({ name: 'Clay API', handle, email: `${handle}@example.test`, password: 'correct horse battery' });
      const { secret } = await env.rt.services.apiKeys.create(merchant, { name: 'e2e' });
      const call = apiClient(env.app, secret);

      const bad = await call('post', '/links', { type: 'amount', name: 'Glaze night', amount: 3000, after_payment: { actions: [{ id: 'action-hookpost', settings: { webhookUrl: 'ftp://nope', channel: 'sales' } }] } });
      expectFieldErrors(bad, ['after_payment.actions[0].settings.webhookUrl', 'after_payment.actions[0].settings.channel']);
      expect((await call('get', '/links')).body.data).to.deep.equal([]);

      const made = await call('post', '/links', { type: 'amount', name: 'Glaze night', amount: 3000, after_payment: { actions: [{ id: 'action-hookpost', settings: { webhookUrl: chat.url, channel: '#glaze' } }] } }).expect(201);
      expect(made.body.after_payment.actions).to.deep.equal([{ id: 'action-hookpost', settings: { webhookUrl: chat.url, channel: '#glaze', mentionPayer: false } }]);

      // A provider plugin's route trying to authorize a payment that is not one of its own.
      const link = await env.rt.services.links.get(merchant, made.body.id);
      const { payment } = await env.rt.services.checkout.start(merchant, link, { amount: 3000, currency: link.currency, name: 'Ana', email: 'ana@example.test' });
      const foreign = await supertest(env.app).post(`/p/provider-hosted/authorize-any/${payment.id}`).expect(422);
      expect(foreign.body).to.deep.equal({ code: 'payment_not_found', retryable: false });
      expect((await env.rt.services.checkout.getPayment(payment.id))?.status).to.equal('pending');
    });
  });
});
