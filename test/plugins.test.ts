import { expect } from 'chai';
import supertest from 'supertest';
import { z } from 'zod';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type TestEnv } from './support/harness.ts';
import { BUILTIN_PLUGINS_DIR, PluginHost, PluginLoadError, builtinSources, intervalCron, type PluginSource } from '../src/core/plugins/host.ts';
import { createRegistries } from '../src/core/plugins/registries.ts';
import { definePlugin } from '../src/plugin-api.ts';
import { fixturePlugin, pluginRow } from './fixtures/plugins/helpers.ts';

const BUILTINS = ['action-customer-tags', 'channel-email', 'channel-outbox', 'channel-vonage', 'provider-crypto-evm', 'provider-sandbox', 'provider-stripe'];

function inline(def: ReturnType<typeof definePlugin>): PluginSource {
  return { source: `inline:${def.id}`, builtin: false, load: async () => ({ default: def }) };
}

forEachTarget('plugins', (target) => {
  describe('built-ins', () => {
    let env: TestEnv;
    before(async () => {
      env = await build(target);
    });
    after(() => env?.close());

    it('loads every built-in and marks it active', async () => {
      const loaded = env.rt.plugins.list();
      expect(loaded.map((p) => [p.id, p.status, p.builtin])).to.deep.equal(BUILTINS.map((id) => [id, 'active', true]));
      const rows = await env.rt.db('plugins').orderBy('id').select('id', 'status', 'error');
      expect(rows).to.deep.equal(BUILTINS.map((id) => ({ id, status: 'active', error: null })));
    });

    it('lists each plugin on the Plugins page with its status and what it provides', async () => {
      const acct = await signUp(env.app);
      const page = await acct.agent.get('/app/plugins').expect(200);
      for (const id of BUILTINS) expect(pluginRow(page.text, id)).to.include('Active');
      expect(pluginRow(page.text, 'channel-outbox')).to.include('Channels: email (fallback), sms (fallback), whatsapp (fallback)').and.include('Pages: Outbox');
      expect(pluginRow(page.text, 'provider-sandbox')).to.include('Providers: sandbox');
      expect(pluginRow(page.text, 'action-customer-tags')).to.include('Actions: customer-tags');
    });

    it('sends visitors without a session from the Plugins page to the login page', async () => {
      const res = await supertest(env.app).get('/app/plugins').expect(303);
      expect(res.headers.location).to.equal('/login?next=%2Fapp%2Fplugins');
    });

    it('serves email, sms and whatsapp from channel-outbox as fallbacks', () => {
      const { channels } = env.rt.registries;
      expect(channels.ids()).to.deep.equal(['email', 'sms', 'whatsapp']);
      for (const [id, address] of [['email', 'email'], ['sms', 'phone'], ['whatsapp', 'phone']]) {
        expect(channels.ownerOf(id)).to.equal('channel-outbox');
        expect(channels.get(id)).to.include({ id, address, fallback: true });
      }
    });

    it('registers the sandbox provider and the customer-tags action', () => {
      const { providers, actions } = env.rt.registries;
      expect(providers.get('sandbox')?.name).to.be.a('string');
      expect(providers.ownerOf('sandbox')).to.equal('provider-sandbox');
      expect(actions.get('customer-tags')?.label).to.be.a('string');
      expect(actions.ownerOf('customer-tags')).to.equal('action-customer-tags');
    });

    it('answers the sandbox test-card page at /p/provider-sandbox/cards without a session', async () => {
      const res = await supertest(env.app).get('/p/provider-sandbox/cards').expect(200).expect('Content-Type', /html/);
      expect(res.text).to.include('4242 4242 4242 4242');
      expect(res.headers['set-cookie']).to.equal(undefined);
    });

    it('answers 404 for a dashboard page of an unknown plugin, or an unknown page of a known one', async () => {
      const acct = await signUp(env.app);
      await acct.agent.get('/app/p/channel-nowhere').expect(404);
      await acct.agent.get('/app/p/channel-nowhere/').expect(404);
      await acct.agent.get('/app/p/channel-outbox/drafts').expect(404);
      await acct.agent.get('/app/p/provider-sandbox').expect(404);
      await acct.agent.get('/app/p/channel-outbox').expect(200);
      await acct.agent.get('/app/p/channel-outbox/').expect(200);
    });

    it("renders an active plugin's templates for core views, and refuses others", async () => {
      const html = await env.rt.plugins.renderView('provider-sandbox', 'cards', { cards: [] });
      expect(html).to.include('Sandbox test cards');
      await env.rt.plugins.renderView('channel-outbox', 'no-such-view').then(() => expect.fail('rendered'), () => {});
      await env.rt.plugins.renderView('channel-nowhere', 'outbox').then(() => expect.fail('rendered'), () => {});
    });

    it('answers 404 under /p/ for a plugin without that route', async () => {
      await supertest(env.app).get('/p/provider-sandbox/nope').expect(404);
      await supertest(env.app).get('/p/channel-nowhere/cards').expect(404);
    });
  });

  describe('a third-party plugin loaded by path', () => {
    let env: TestEnv;
    before(async () => {
      env = await build(target, {
        env: {
          PAYLINK_PLUGINS: [fixturePlugin('audit-recorder'), fixturePlugin('audit-peeker')].join(','),
          PAYLINK_PLUGIN_AUDIT_RECORDER: JSON.stringify({ label: 'ops' }),
        },
      });
    });
    after(() => env?.close());

    const recorded = () => env.rt.db('plugin_records').where({ plugin_id: 'audit-recorder', collection: 'seen' });

    it('loads next to the built-ins with the settings from PAYLINK_PLUGIN_<ID>', async () => {
      const plugin = env.rt.plugins.list().find((p) => p.id === 'audit-recorder');
      expect(plugin).to.include({ status: 'active', builtin: false, version: '2.1.0', source: fixturePlugin('audit-recorder') });
      expect(plugin!.contributes.hooks).to.deep.equal(['merchant.created']);
      const acct = await signUp(env.app);
      const row = pluginRow((await acct.agent.get('/app/plugins').expect(200)).text, 'audit-recorder');
      expect(row).to.include('Active').and.include('Hooks: merchant.created').and.include(fixturePlugin('audit-recorder'));
    });

    it('runs its merchant.created handler from the job queue, exactly once, with the event id', async () => {
      await env.rt.jobs.drain();
      await env.rt.db('plugin_records').where({ plugin_id: 'audit-recorder' }).delete();
      const acct = await signUp(env.app);
      expect(await recorded()).to.have.length(0, 'the handler must not run inline with the sign-up');

      await env.rt.jobs.drain();
      await env.rt.jobs.drain();
      const merchant = (await env.rt.services.merchants.getByHandle(acct.handle))!;
      const [event] = await env.rt.events.listForMerchant(merchant.key);
      expect(event.type).to.equal('merchant.created');
      const seen = (await supertest(env.app).get('/p/audit-recorder/seen').expect(200)).body;
      expect(seen).to.have.length(1);
      expect(seen[0].merchantId).to.equal(merchant.id);
      expect(seen[0].data).to.deep.equal({ eventId: event.id, handle: acct.handle, label: 'ops', keep: 100 });
      expect(await recorded()).to.have.length(1);
    });

    it('keeps a plugin to its own records: another plugin cannot list, get or change them', async () => {
      await signUp(env.app);
      await env.rt.jobs.drain();
      const [theirs] = (await supertest(env.app).get('/p/audit-recorder/seen').expect(200)).body;
      expect(theirs.id).to.match(/^rec_/);

      expect((await supertest(env.app).get('/p/audit-peeker/records/seen').expect(200)).body).to.deep.equal([]);
      await supertest(env.app).get(`/p/audit-peeker/records/seen/${theirs.id}`).expect(404);
      await supertest(env.app).post(`/p/audit-peeker/records/seen/${theirs.id}`).expect(404);
      const stored = await env.rt.db('plugin_records').where({ public_id: theirs.id }).first();
      expect(JSON.parse(stored.data)).to.deep.equal(theirs.data);

      const own = (await supertest(env.app).post('/p/audit-peeker/records/seen').expect(201)).body;
      await supertest(env.app).get(`/p/audit-peeker/records/seen/${own.id}`).expect(200);
      const recorder = (await supertest(env.app).get('/p/audit-recorder/seen').expect(200)).body as { id: string }[];
      expect(recorder.map((r) => r.id)).not.to.include(own.id);

      // Pruning by age reaches only the plugin's own records, and only those older than asked.
      const later = new Date(env.clock.now().getTime() + 1000).toISOString();
      expect((await supertest(env.app).delete(`/p/audit-peeker/records/seen?before=${env.clock.now().toISOString()}`).expect(200)).body).to.deep.equal({ deleted: 0 });
      expect((await supertest(env.app).delete(`/p/audit-peeker/records/seen?before=${later}`).expect(200)).body).to.deep.equal({ deleted: 1 });
      await supertest(env.app).get(`/p/audit-peeker/records/seen/${own.id}`).expect(404);
      expect(await env.rt.db('plugin_records').where({ public_id: theirs.id }).first(), 'another plugin’s record stays').to.not.equal(undefined);
    });
  });

  describe('boot failures', () => {
    it('reports every plugin that cannot be loaded in one PluginLoadError, and does not start', async () => {
      const sources = {
        duplicate: fixturePlugin('duplicate-outbox'),
        future: fixturePlugin('future-api'),
        badConfig: fixturePlugin('audit-recorder'),
        missingFile: './test/fixtures/plugins/no-such-plugin/index.ts',
        missingPackage: 'paylink-plugin-not-installed',
        throwsOnImport: fixturePlugin('throws-on-import'),
        notAPlugin: fixturePlugin('not-a-plugin'),
        fine: fixturePlugin('audit-peeker'),
      };
      const err = await build(target, {
        env: {
          PAYLINK_PLUGINS: Object.values(sources).join(','),
          PAYLINK_PLUGIN_AUDIT_RECORDER: JSON.stringify({ label: 5 }),
        },
      }).then(
        async (env) => {
          await env.close();
          throw new Error('the app started');
        },
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(PluginLoadError);
      const { code, problems } = err as PluginLoadError;
      expect(code).to.equal('plugin_load_failed');
      expect(problems.map((p) => [p.source, p.code])).to.have.deep.members([
        [sources.duplicate, 'duplicate_id'],
        [sources.future, 'api_version_mismatch'],
        [sources.badConfig, 'invalid_config'],
        [sources.missingFile, 'import_failed'],
        [sources.missingPackage, 'import_failed'],
        [sources.throwsOnImport, 'import_failed'],
        [sources.notAPlugin, 'not_a_plugin'],
      ]);
      const badConfig = problems.find((p) => p.source === sources.badConfig)!;
      expect(badConfig.message).to.include('PAYLINK_PLUGIN_AUDIT_RECORDER').and.include('label');
    });

    it('refuses a plugin id that is not <kind>-<vendor>', async () => {
      const err = await build(target, { pluginSources: [inline(definePlugin({ id: 'Outbox', version: '1.0.0', apiVersion: 1, register() {} }))] }).then(
        () => null,
        (e: unknown) => e,
      );
      expect((err as PluginLoadError).problems?.map((p) => p.code)).to.deep.equal(['invalid_plugin']);
    });
  });

  describe('isolation', () => {
    let env: TestEnv;
    const FAILING = ['provider-flaky', 'action-misnamed', 'provider-clash', 'channel-twice'];
    before(async () => {
      const twice = definePlugin({
        id: 'channel-twice',
        version: '1.0.0',
        apiVersion: 1,
        config: z.object({}),
        register(api) {
          const email = { id: 'email', address: 'email' as const, send: async () => ({ providerMessageId: 'x' }) };
          api.channels.register(email);
          api.channels.register(email);
        },
      });
      env = await build(target, {
        pluginSources: [
          ...builtinSources(BUILTIN_PLUGINS_DIR),
          ...['register-throws', 'unknown-hook', 'provider-clash'].map((name) => ({
            source: fixturePlugin(name),
            builtin: false,
            load: () => import(new URL(`./fixtures/plugins/${name}/index.ts`, import.meta.url).href),
          })),
          inline(twice),
        ],
      });
    });
    after(() => env?.close());

    const status = (id: string) => env.rt.plugins.list().find((p) => p.id === id);

    it('starts anyway, with the failing plugins disabled and the built-ins active', async () => {
      for (const id of BUILTINS) expect(status(id)?.status).to.equal('active');
      for (const id of FAILING) expect(status(id)?.status, id).to.equal('failed');
      await supertest(env.app).get('/health').expect(200);
      await supertest(env.app).get('/p/provider-sandbox/cards').expect(200);
      const rows = await env.rt.db('plugins').whereIn('id', FAILING).select('status');
      expect(rows.map((r) => r.status)).to.deep.equal(FAILING.map(() => 'failed'));
    });

    it('shows a disabled plugin as Disabled with its error on the Plugins page', async () => {
      const acct = await signUp(env.app);
      const page = await acct.agent.get('/app/plugins').expect(200);
      for (const id of FAILING) expect(pluginRow(page.text, id), id).to.include('Disabled').and.not.include('Active');
      expect(pluginRow(page.text, 'provider-flaky')).to.include('cannot reach flaky.example');
      expect(status('provider-flaky')!.error).to.equal('cannot reach flaky.example');
      expect(status('action-misnamed')!.error).to.include('payment.completed');
      expect(status('provider-clash')!.error).to.include('provider-sandbox');
    });

    it('disables a plugin that subscribes to an unknown event, even when register() swallows the error', () => {
      expect(status('action-misnamed')!.status).to.equal('failed');
      expect(env.rt.registries.actions.has('misnamed')).to.equal(false);
    });

    it('keeps nothing a plugin registered before register() threw', async () => {
      expect(env.rt.registries.providers.has('flaky')).to.equal(false);
      expect(status('provider-flaky')!.contributes).to.deep.equal({ hooks: [], providers: [], channels: [], actions: [], pages: [] });
      await supertest(env.app).get('/p/provider-flaky/ping').expect(404);
    });

    it('fails a plugin whose provider id is taken, keeping none of its other registrations', async () => {
      const { providers, channels, actions } = env.rt.registries;
      expect(providers.ownerOf('sandbox')).to.equal('provider-sandbox');
      expect(actions.has('clash-note')).to.equal(false);
      expect(channels.ownerOf('sms')).to.equal('channel-outbox');
      expect(channels.ownerOf('email')).to.equal('channel-outbox');
      expect(env.rt.plugins.dashboardPages().map((p) => p.pluginId)).to.deep.equal(['channel-outbox', 'provider-crypto-evm']);
      await supertest(env.app).get('/p/provider-clash/ping').expect(404);
    });

    it('never runs the hooks of a disabled plugin', async () => {
      await signUp(env.app);
      await env.rt.jobs.drain();
      expect(await env.rt.db('plugin_records').whereIn('plugin_id', FAILING)).to.have.length(0);
    });

    it('disables a plugin whose register() never finishes, instead of hanging the boot', async () => {
      const host = new PluginHost({
        db: env.rt.db,
        clock: env.rt.clock,
        log: env.rt.log,
        events: env.rt.events,
        registries: createRegistries(),
        baseUrl: env.config.baseUrl,
        settings: {},
        getMerchant: async () => null,
        merchantKeys: { keyOf: async () => null, publicIdsOf: async () => new Map() },
        checkout: () => {
          throw new Error('not used by this plugin');
        },
        registerTimeoutMs: 5,
      });
      const stuck = definePlugin({
        id: 'action-stuck',
        version: '1.0.0',
        apiVersion: 1,
        register: (api) => new Promise<void>(() => api.actions.register({ id: 'stuck', label: 'Stuck', settings: z.object({}), run: async () => {} })),
      });
      const [loaded] = await host.load([inline(stuck)]);
      expect(loaded).to.include({ id: 'action-stuck', status: 'failed' });
      expect(loaded.contributes.actions).to.deep.equal([]);
    });

    it('leaves disabled plugins out of the navigation and answers 404 for their pages', async () => {
      const acct = await signUp(env.app);
      const dash = await acct.agent.get('/app').expect(200);
      expect(dash.text).to.include('href="/app/p/channel-outbox"');
      expect(dash.text).not.to.include('/app/p/provider-flaky').and.not.include('/app/p/provider-clash');
      await acct.agent.get('/app/p/provider-flaky').expect(404);
      await acct.agent.get('/app/p/provider-clash/').expect(404);
    });
  });
});

describe('api.schedule.every intervals', () => {
  it('turns minutes dividing 60 and hours dividing 24 into cron, and refuses anything else', () => {
    expect(['1m', '5m', '30m', '1h', '6h', '24h'].map(intervalCron)).to.deep.equal(['* * * * *', '*/5 * * * *', '*/30 * * * *', '0 */1 * * *', '0 */6 * * *', '0 0 * * *']);
    expect(['7m', '60m', '0m', '5h', '25h', '5', '5 m', '1d', 5, null].map(intervalCron)).to.deep.equal(Array(10).fill(null));
  });
});
