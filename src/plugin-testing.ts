/**
 * The contract test kit for plugin authors (`paylink/plugin-testing`). It loads your plugin into a
 * real Paylink host — a runtime on a throwaway SQLite database, built the way the project's own tests
 * build theirs — and checks what the plugin contract promises for a channel, an action or a provider.
 *
 * Works with any test runner: `checkChannel/checkAction/checkProvider` answer a report whose
 * `problems` list is empty when the plugin passes; `testChannel/testAction/testProvider` throw one
 * error naming every problem (use them inside mocha's `it`, node:test's `test`, …). What the kit
 * cannot see (your side effects, a remote API) it lists under `notChecked` instead of passing it
 * silently.
 *
 * The plugin is given as its module (a path or npm package name, as in PAYLINK_PLUGINS, or a file
 * URL) — loaded the way the host loads it — or as the definition object itself.
 *
 * @example
 * // test/contract.test.ts of a channel plugin
 * import { testChannel } from 'paylink/plugin-testing';
 * it('meets the channel contract', () =>
 *   testChannel(new URL('../index.ts', import.meta.url), {
 *     channelId: 'ntfy',
 *     sampleAddress: 'shop-orders',
 *     failingAddress: 'no such topic!',
 *     config: { server: 'http://127.0.0.1:8089' },
 *   }));
 */
import { fileURLToPath } from 'node:url';
import { createRuntime, type Runtime } from './runtime.ts';
import { systemClock } from './core/clock.ts';
import { publicId } from './core/ids.ts';
import { scratchConfig, scratchSqliteDatabase } from './core/scratch.ts';
import { externalSource, envNameFor, type PluginSource } from './core/plugins/host.ts';
import { validHoldMinutes } from './core/plugins/registries.ts';
import { toPluginMerchant } from './features/merchants/index.ts';
import {
  type ActionContext,
  type ActionCustomer,
  type AfterPaymentAction,
  type Channel,
  type CheckoutSessionInfo,
  type OutgoingMessage,
  type PaymentProvider,
  type PluginDefinition,
  type PluginMerchant,
} from './plugin-api.ts';

/** A plugin module (path or package name as in PAYLINK_PLUGINS, or a file URL) or its definition. */
export type PluginUnderTest = string | URL | PluginDefinition<any>;

export interface ContractReport {
  /** The plugin's id, once the host could read it. */
  pluginId: string | null;
  /** What breaks the contract; empty when the plugin passes. */
  problems: string[];
  /** What the kit did not check, and why (e.g. no failing address was given). */
  notChecked: string[];
}

export interface CommonOptions {
  /** The plugin's settings, as an operator gives them in PAYLINK_PLUGIN_<ID> (JSON). */
  config?: Record<string, unknown>;
  /** The host's log level while checking (default `silent`). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'silent';
}

export interface ChannelOptions extends CommonOptions {
  channelId: string;
  /** An address the channel accepts and can deliver to in your test setup. */
  sampleAddress: string;
  /** An address whose send must fail with a ProviderError (checks the failure path). */
  failingAddress?: string;
}

export interface ActionOptions<S = unknown> extends CommonOptions {
  actionId: string;
  /** Settings the action's schema must accept (at least one). */
  validSettings: unknown[];
  /** Settings the schema must reject, each with a message. */
  invalidSettings: unknown[];
  /**
   * The settings `run` gets (default: the first of `validSettings`). A function receives a fixture
   * merchant and customer of the host and may create customer tags for settings that name one.
   */
  runSettings?: S | ((fixture: ActionFixture) => S | Promise<S>);
}

export interface ActionFixture {
  merchant: PluginMerchant;
  customer: ActionCustomer;
  /** Creates a customer tag of the fixture merchant and answers its id. */
  customerTag(name: string): Promise<string>;
}

export interface ProviderOptions extends CommonOptions {
  providerId: string;
  /** The merchant's settings for this provider (checked by `merchantSettings.schema`). */
  settings?: Record<string, unknown>;
}

/** Thrown by testChannel/testAction/testProvider: every problem of the report, one per line. */
export class PluginContractError extends Error {
  constructor(readonly report: ContractReport) {
    super(`${report.pluginId ?? 'the plugin'} does not meet the plugin contract:\n${report.problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'PluginContractError';
  }
}

const CHANNEL_ADDRESS_KIND = /^[a-z][a-z0-9_]{1,31}$/;
const isFn = (v: unknown): v is (...args: never[]) => unknown => typeof v === 'function';
const text = (v: unknown) => typeof v === 'string' && v.trim().length > 0;
const errorText = (err: unknown) => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));
/** A ProviderError from any copy of the plugin API (checked by name and shape, not instanceof). */
const isProviderError = (err: unknown) =>
  err instanceof Error && err.name === 'ProviderError' && typeof (err as { retryable?: unknown }).retryable === 'boolean' && typeof (err as { code?: unknown }).code === 'string';

interface Host {
  rt: Runtime;
  pluginId: string;
  merchant: PluginMerchant;
  merchantKey: number;
  problem(message: string): void;
  notChecked(message: string): void;
}

function sourceOf(plugin: PluginUnderTest): PluginSource {
  if (typeof plugin === 'string') return externalSource(plugin);
  if (plugin instanceof URL) return externalSource(fileURLToPath(plugin));
  return { source: `plugin-testing:${String(plugin?.id)}`, builtin: false, load: async () => ({ default: plugin }) };
}

/** Loads the plugin alone into a fresh host, runs `body` while it is active, and removes everything. */
async function inHost(plugin: PluginUnderTest, opts: CommonOptions, body: (host: Host) => Promise<void>): Promise<ContractReport> {
  const report: ContractReport = { pluginId: null, problems: [], notChecked: [] };
  const problem = (m: string) => void report.problems.push(m);
  const source = sourceOf(plugin);
  let mod: unknown;
  try {
    mod = await source.load();
  } catch (err) {
    problem(`cannot be imported: ${errorText(err)}`);
    return report;
  }
  const id = (mod as { default?: { id?: unknown } } | null)?.default?.id;
  if (typeof id === 'string') report.pluginId = id;
  const env: Record<string, string> = { LOG_LEVEL: opts.logLevel ?? 'silent' };
  if (typeof id === 'string' && opts.config) env[envNameFor(id)] = JSON.stringify(opts.config);
  const database = scratchSqliteDatabase();
  let scratch: ReturnType<typeof scratchConfig> | null = null;
  let rt: Runtime | null = null;
  try {
    scratch = scratchConfig({ DATABASE_URL: database.url, ...env });
    try {
      rt = await createRuntime(scratch.config, { clock: systemClock, pluginSources: [{ ...source, load: async () => mod }] });
    } catch (err) {
      // Load-time problems (shape, id, apiVersion, config…): the host would not start with this plugin.
      const problems = (err as { problems?: { message: string }[] }).problems;
      if (Array.isArray(problems)) problems.forEach((p) => problem(`stops the host at boot: ${p.message}`));
      else problem(`the host could not start with it: ${errorText(err)}`);
      return report;
    }
    const loaded = rt.plugins.list()[0];
    report.pluginId = loaded.id;
    if (loaded.status !== 'active') {
      problem(`register() failed, so the host disables the plugin: ${loaded.error}`);
      return report;
    }
    const { merchant } = await rt.services.merchants.signUp({ name: 'Contract Kit Shop', handle: 'contract-kit', email: 'owner@contract-kit.test', password: 'contract kit password' });
    await body({ rt, pluginId: loaded.id, merchant: toPluginMerchant(merchant), merchantKey: merchant.key, problem, notChecked: (m) => void report.notChecked.push(m) });
  } catch (err) {
    problem(`the check itself failed: ${errorText(err)}`);
  } finally {
    await rt?.close().catch(() => {});
    await database.drop();
    scratch?.remove();
  }
  return report;
}

/** What the plugin registered, for messages that name the id it should have used. */
function contributions(host: Host, kind: 'channels' | 'actions' | 'providers'): string {
  const ids = host.rt.plugins.list()[0].contributes[kind];
  return ids.length ? ids.join(', ') : 'nothing';
}

function throwIfProblems(report: ContractReport): ContractReport {
  if (report.problems.length) throw new PluginContractError(report);
  return report;
}

// ---------------------------------------------------------------------------------------------
// Channels

/**
 * A channel: registered under `channelId` by this plugin, a label and an address it declares
 * (`email`, `phone`, or its own kind with a label and an optional `parse` that accepts the sample),
 * `send` answers a non-empty providerMessageId, a failing send throws a ProviderError with
 * `retryable` and `code`, and `sendMany` (when present) answers one result per message.
 */
export async function checkChannel(plugin: PluginUnderTest, opts: ChannelOptions): Promise<ContractReport> {
  return inHost(plugin, opts, async (host) => {
    const { problem } = host;
    const channel = host.rt.registries.channels.get(opts.channelId) as (Channel & { label?: unknown; address: unknown }) | undefined;
    if (!channel || host.rt.registries.channels.ownerOf(opts.channelId) !== host.pluginId) {
      return problem(`registers no channel "${opts.channelId}" (it registered: ${contributions(host, 'channels')})`);
    }
    if (channel.label !== undefined && !text(channel.label)) problem('channel label must be a non-empty string');
    let to = opts.sampleAddress;
    const address = channel.address;
    if (typeof address === 'object' && address !== null) {
      const a = address as { kind?: unknown; label?: unknown; parse?: unknown };
      if (typeof a.kind !== 'string' || !CHANNEL_ADDRESS_KIND.test(a.kind) || a.kind === 'email' || a.kind === 'phone') {
        problem(`address kind "${String(a.kind)}" must match ${CHANNEL_ADDRESS_KIND} and not be email or phone`);
      }
      if (!text(a.label)) problem('address label must be a non-empty string');
      if (a.parse !== undefined && !isFn(a.parse)) problem('address parse must be a function');
      if (isFn(a.parse)) {
        const parsed = (a.parse as (v: string) => { ok: boolean; value?: string; message?: string })(opts.sampleAddress);
        if (parsed?.ok === true && typeof parsed.value === 'string') to = parsed.value;
        else problem(`address parse rejects the sample address "${opts.sampleAddress}": ${parsed?.message ?? 'no message'}`);
      }
    } else if (address !== 'email' && address !== 'phone') {
      problem(`address must be 'email', 'phone' or { kind, label, parse? }, not ${JSON.stringify(address)}`);
    }

    const message = (recipient: string): OutgoingMessage => {
      const linkUrl = `${host.rt.config.baseUrl}/${host.merchant.handle}/contract-kit`;
      return {
        id: publicId('dlv'),
        merchant: { id: host.merchant.id, name: host.merchant.name, brandColor: host.merchant.brandColor },
        to: recipient,
        ...(address === 'email' ? { subject: `${host.merchant.name}: your payment link`, html: `<p>Pay here: <a href="${linkUrl}">${linkUrl}</a></p>` } : {}),
        text: `Pay here: ${linkUrl}`,
        kind: 'test',
        linkUrl,
      } as OutgoingMessage;
    };
    try {
      const result = await channel.send(message(to));
      if (!text(result?.providerMessageId)) problem(`send must answer { providerMessageId: non-empty string }, got ${JSON.stringify(result)}`);
    } catch (err) {
      problem(`send to the sample address failed: ${errorText(err)}`);
    }

    if (opts.failingAddress === undefined) {
      host.notChecked('the failure path (pass failingAddress: an address whose send fails)');
    } else {
      try {
        await channel.send(message(opts.failingAddress));
        problem(`send to the failing address "${opts.failingAddress}" succeeded; it must throw a ProviderError`);
      } catch (err) {
        if (!isProviderError(err)) problem(`a failed send must throw a ProviderError (with retryable and code), got ${errorText(err)}`);
      }
    }

    if (channel.sendMany !== undefined) {
      if (!isFn(channel.sendMany)) return problem('sendMany must be a function');
      try {
        const results = await channel.sendMany([message(to), message(to)]);
        if (!Array.isArray(results) || results.length !== 2) problem('sendMany must answer one result per message, in order');
        else if (!results.every((r) => text((r as { providerMessageId?: unknown })?.providerMessageId) || isProviderError(r))) {
          problem('each sendMany result must be { providerMessageId } or a ProviderError');
        }
      } catch (err) {
        problem(`sendMany failed: ${errorText(err)}`);
      }
    }
  });
}

export async function testChannel(plugin: PluginUnderTest, opts: ChannelOptions): Promise<ContractReport> {
  return throwIfProblems(await checkChannel(plugin, opts));
}

// ---------------------------------------------------------------------------------------------
// After-payment actions

/** Action fields added within apiVersion 1; optional, checked when present. */
interface ActionExtras {
  description?: unknown;
  fromForm?: unknown;
  formData?: (ctx: { merchant: PluginMerchant; customer: null }) => Promise<Record<string, unknown>>;
  check?: (settings: unknown, ctx: { merchant: PluginMerchant }) => Promise<{ field: string; message: string }[]>;
}

/**
 * An action: registered under `actionId` by this plugin with a label; its settings schema accepts
 * each valid and rejects each invalid example; its formFragment (when set) renders with the model of
 * the slot `link-form.after-payment` (ActionFormModel); `check` (when set) accepts the settings run
 * gets; `run` succeeds for a payment.succeeded event and again
 * for the same event (runs are at least once: a repeat must not fail).
 */
export async function checkAction<S>(plugin: PluginUnderTest, opts: ActionOptions<S>): Promise<ContractReport> {
  return inHost(plugin, opts, async (host) => {
    const { problem } = host;
    const action = host.rt.registries.actions.get(opts.actionId) as (AfterPaymentAction<unknown> & ActionExtras) | undefined;
    if (!action || host.rt.registries.actions.ownerOf(opts.actionId) !== host.pluginId) {
      return problem(`registers no action "${opts.actionId}" (it registered: ${contributions(host, 'actions')})`);
    }
    if (!text(action.label)) problem('action label must be a non-empty string');
    if (action.description !== undefined && typeof action.description !== 'string') problem('action description must be a string');
    for (const fn of ['fromForm', 'formData', 'check'] as const) if (action[fn] !== undefined && !isFn(action[fn])) problem(`${fn} must be a function`);
    if (!opts.validSettings.length) problem('give at least one example of valid settings');
    let settings: unknown = undefined;
    opts.validSettings.forEach((s, i) => {
      const parsed = action.settings.safeParse(s);
      if (!parsed.success) problem(`settings schema rejects validSettings[${i}]: ${parsed.error.issues.map((x) => `${x.path.join('.') || 'settings'}: ${x.message}`).join('; ')}`);
      else if (i === 0) settings = parsed.data;
    });
    opts.invalidSettings.forEach((s, i) => {
      const parsed = action.settings.safeParse(s);
      if (parsed.success) problem(`settings schema accepts invalidSettings[${i}] (${JSON.stringify(s)})`);
      else if (!parsed.error.issues.every((x) => text(x.message))) problem(`invalidSettings[${i}] is rejected without a message to show by the field`);
    });
    if (!opts.invalidSettings.length) host.notChecked('settings rejection (pass invalidSettings)');

    if (action.formFragment !== undefined) {
      try {
        // The model of the slot link-form.after-payment (ActionFormModel), for a new link without a customer.
        const data = isFn(action.formData) ? await action.formData({ merchant: host.merchant, customer: null }) : {};
        const model = {
          settings: settings ?? {},
          errors: {},
          name: (field: string) => `action.${opts.actionId}.${field}`,
          inputId: (field: string) => `action-${opts.actionId}-${field}`.replace(/[^A-Za-z0-9_-]/g, '-'),
          merchant: host.merchant,
          customer: null,
          data,
        };
        const html = await host.rt.plugins.renderView(host.pluginId, action.formFragment, model);
        if (typeof html !== 'string') problem(`formFragment "${action.formFragment}" must render to HTML`);
      } catch (err) {
        problem(`formFragment "${action.formFragment}" does not render for a new link: ${errorText(err)}`);
      }
    }

    const created = await host.rt.services.customers.create(host.merchantKey, { name: 'Kit Customer', email: 'customer@contract-kit.test', phone: '+4915123456789' });
    const customer: ActionCustomer = { id: created.id, name: created.name, email: created.email, phone: created.phone, tags: [] };
    if (opts.runSettings !== undefined) {
      const fixture: ActionFixture = {
        merchant: host.merchant,
        customer,
        customerTag: async (name) => (await host.rt.services.tags.create(host.merchantKey, { name, kind: 'customer' })).id,
      };
      const given = isFn(opts.runSettings) ? await (opts.runSettings as (f: ActionFixture) => unknown)(fixture) : opts.runSettings;
      const parsed = action.settings.safeParse(given);
      if (!parsed.success) return problem(`settings schema rejects runSettings: ${parsed.error.issues.map((x) => x.message).join('; ')}`);
      settings = parsed.data;
    }
    if (settings === undefined) return;
    if (isFn(action.check)) {
      const found = await action.check(settings, { merchant: host.merchant });
      if (!Array.isArray(found)) return problem(`check must answer a list of problems, got ${JSON.stringify(found)}`);
      if (found.length) return problem(`check rejects the settings run gets: ${found.map((p) => `${p.field || 'settings'}: ${p.message}`).join('; ')}`);
    }
    const paymentId = publicId('pay');
    const event = {
      id: publicId('evt'),
      type: 'payment.succeeded',
      createdAt: new Date(),
      payload: { merchantId: host.merchant.id, paymentId, linkId: null, amount: 1250, currency: host.merchant.currency, customerId: customer.id },
    };
    const ctx = {
      event,
      settings,
      merchant: host.merchant,
      link: null,
      customer,
      payer: { name: customer.name, email: customer.email, phone: customer.phone },
    } as unknown as ActionContext<unknown>;
    for (const attempt of ['first run', 'repeated run with the same event']) {
      try {
        const result = await action.run(ctx);
        if (result !== undefined) problem(`run must resolve to nothing (redirects after payment are the link's redirect_url), got ${JSON.stringify(result)}`);
      } catch (err) {
        problem(`${attempt} failed: ${errorText(err)}`);
        break;
      }
    }
    host.notChecked("run's side effects happen once per event (the kit sees only that a repeat does not fail)");
  });
}

export async function testAction<S>(plugin: PluginUnderTest, opts: ActionOptions<S>): Promise<ContractReport> {
  return throwIfProblems(await checkAction(plugin, opts));
}

// ---------------------------------------------------------------------------------------------
// Payment providers

/** Provider fields added by the per-merchant contract; optional, checked when present. */
interface ProviderExtras {
  methodLabel?: unknown;
  captureModel?: unknown;
  holdMinutes?: unknown;
  merchantSettings?: { schema?: { safeParse?: unknown }; secrets?: unknown; formFragment?: unknown; verify?: unknown };
  checkoutOrigins?: unknown;
}

/**
 * A provider: registered under `providerId` by this plugin with a name; start/capture/void/refund
 * are functions; `merchantSettings.schema` accepts the given settings and `secrets` names some of
 * them; `checkoutOrigins(settings)` answers a list of origins; `start(session, settings)` answers
 * `{ redirect: absolute http(s) URL }` (to this host or to one of the declared origins, which core
 * adds to the pay page's CSP) or `{ render: html }`.
 */
export async function checkProvider(plugin: PluginUnderTest, opts: ProviderOptions): Promise<ContractReport> {
  return inHost(plugin, opts, async (host) => {
    const { problem } = host;
    const provider = host.rt.registries.providers.get(opts.providerId) as (PaymentProvider & ProviderExtras) | undefined;
    if (!provider || host.rt.registries.providers.ownerOf(opts.providerId) !== host.pluginId) {
      return problem(`registers no provider "${opts.providerId}" (it registered: ${contributions(host, 'providers')})`);
    }
    if (!text(provider.name)) problem('provider name must be a non-empty string');
    for (const method of ['start', 'capture', 'void', 'refund'] as const) if (!isFn(provider[method])) problem(`${method} must be a function`);
    if (provider.methodLabel !== undefined && !text(provider.methodLabel)) problem('methodLabel must be a non-empty string');
    if (provider.captureModel !== undefined && provider.captureModel !== 'manual' && provider.captureModel !== 'immediate' && !isFn(provider.captureModel)) problem(`captureModel must be 'manual', 'immediate' or a function of the settings`);
    if (provider.holdMinutes !== undefined && !isFn(provider.holdMinutes) && !validHoldMinutes(provider.holdMinutes)) problem('holdMinutes must be a whole number of minutes from 1 to 1440, or a function of the settings answering one');

    let settings: unknown = opts.settings ?? {};
    const ms = provider.merchantSettings;
    if (ms !== undefined) {
      if (!isFn(ms?.schema?.safeParse)) problem('merchantSettings.schema must be a zod schema');
      else {
        const parsed = (ms.schema.safeParse as (v: unknown) => { success: boolean; data?: unknown; error?: { issues: { path: PropertyKey[]; message: string }[] } })(settings);
        if (parsed.success) settings = parsed.data;
        else problem(`merchantSettings.schema rejects the given settings: ${parsed.error?.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}`);
      }
      if (ms.secrets !== undefined && !(Array.isArray(ms.secrets) && ms.secrets.every(text))) problem('merchantSettings.secrets must list setting names');
      if (ms.formFragment !== undefined && !text(ms.formFragment)) problem('merchantSettings.formFragment must name a template');
      if (ms.verify !== undefined && !isFn(ms.verify)) problem('merchantSettings.verify must be a function');
    } else if (opts.settings) {
      problem('settings were given but the provider declares no merchantSettings');
    }

    let origins: string[] = [];
    if (provider.checkoutOrigins !== undefined) {
      if (!isFn(provider.checkoutOrigins)) problem('checkoutOrigins must be a function of the settings');
      else {
        const listed = await (provider.checkoutOrigins as (s: unknown) => unknown)(settings);
        if (!Array.isArray(listed)) problem(`checkoutOrigins must answer a list of origins, got ${JSON.stringify(listed)}`);
        else {
          origins = listed.filter((o): o is string => typeof o === 'string');
          for (const o of listed) if (!isOrigin(o)) problem(`checkoutOrigins lists ${JSON.stringify(o)}, which is not an origin such as https://pay.example.com`);
        }
      }
    }

    if (isFn(provider.captureModel)) {
      try {
        const model = (provider.captureModel as (s: unknown) => unknown)(settings);
        if (model !== 'manual' && model !== 'immediate') problem(`captureModel(settings) must answer 'manual' or 'immediate', got ${JSON.stringify(model)}`);
      } catch (err) {
        problem(`captureModel(settings) failed: ${errorText(err)}`);
      }
    }

    const session: CheckoutSessionInfo = {
      id: publicId('cs'),
      paymentId: publicId('pay'),
      merchant: host.merchant,
      amount: 1250,
      currency: host.merchant.currency,
      description: 'Contract kit payment',
      customer: { name: 'Kit Customer', email: 'customer@contract-kit.test' },
      returnUrl: `${host.rt.config.baseUrl}/${host.merchant.handle}`,
      expiresAt: new Date(host.rt.clock.now().getTime() + 30 * 60_000).toISOString(),
    };
    /** start(session) answers a redirect to this host or a listed origin, or a page to render. */
    async function checkStart(s: CheckoutSessionInfo, what: string): Promise<void> {
      try {
        // start receives the merchant's settings as its second argument (per-merchant providers).
        const result = (await (provider!.start as (s: CheckoutSessionInfo, settings: unknown) => Promise<unknown>)(s, settings)) as Record<string, unknown> | null;
        if (result && typeof result.redirect === 'string') {
          const own = new URL(host.rt.config.baseUrl).origin;
          if (!/^https?:\/\//.test(result.redirect) || !URL.canParse(result.redirect)) problem(`start${what} redirects to "${result.redirect}", which is not an absolute http(s) URL`);
          else if (new URL(result.redirect).origin !== own && !origins.includes(new URL(result.redirect).origin)) {
            problem(`start${what} redirects to ${new URL(result.redirect).origin}, which checkoutOrigins does not list: the pay page's CSP would block it`);
          }
        } else if (!(result && typeof result.render === 'string')) {
          problem(`start${what} must answer { redirect: url } or { render: html }, got ${JSON.stringify(result)}`);
        }
      } catch (err) {
        problem(`start${what} failed: ${errorText(err)}`);
      }
    }
    await checkStart(session, '');
    // Subscriptions (apiVersion 1): a provider that says it bills plans starts a checkout with one.
    if ((provider as { subscriptions?: unknown }).subscriptions === true) {
      const plan = { interval: 'month' as const, intervalCount: 1, renewalAmount: 1250, productName: 'Contract kit plan' };
      await checkStart({ ...session, id: publicId('cs'), paymentId: publicId('pay'), recurring: { ...plan, trialDays: null } }, ' with a monthly plan');
      await checkStart({ ...session, id: publicId('cs'), paymentId: publicId('pay'), amount: 0, recurring: { ...plan, trialDays: 14 } }, ' with a free trial (amount 0)');
      host.notChecked('renewals and cancellations through api.services.subscriptions against your payment service');
    }
    host.notChecked('capture, void and refund against your payment service (the kit checks only that they exist)');
  });
}

export async function testProvider(plugin: PluginUnderTest, opts: ProviderOptions): Promise<ContractReport> {
  return throwIfProblems(await checkProvider(plugin, opts));
}

function isOrigin(value: unknown): boolean {
  return typeof value === 'string' && /^https?:\/\//.test(value) && URL.canParse(value) && new URL(value).origin === value;
}
