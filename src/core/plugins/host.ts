/**
 * Loads plugins: built-ins from plugins/<id>/index.ts and third-party modules named in
 * PAYLINK_PLUGINS (npm package name or file path). Checks every definition (shape, id, apiVersion,
 * duplicates, config) and reports all problems together; a plugin whose register() throws is
 * disabled — nothing it registered takes effect — and the app still starts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import express, { type Router } from 'express';
import { Eta } from 'eta';
import { pluginEntry, registerPluginResolution } from './resolve.ts';
import type { z } from 'zod';
import type { Db } from '../db.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { EventBus, EventHandler, EventType } from '../events.ts';
import type { JobQueue } from '../jobs.ts';
import { isEventType } from '../events.ts';
import { createPluginStore, type MerchantResolver } from './store.ts';
import { channelProblem, validHoldMinutes, type Registries } from './registries.ts';
import {
  PLUGIN_API_VERSION,
  PLUGIN_ID_PATTERN,
  type AfterPaymentAction,
  type Channel,
  type DashboardPage,
  type PaymentProvider,
  type PluginApi,
  type PluginDefinition,
  type PluginMerchant,
  type PluginCheckoutServices,
  type PluginCustomerServices,
  type PluginSubscriptionServices,
  type PaymentMethodInfo,
  type AmountOutcome,
  type SavedProfileRef,
} from '../../plugin-api.ts';

export const BUILTIN_PLUGINS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../plugins');

export type PluginStatus = 'active' | 'failed';

export interface LoadedPlugin {
  id: string;
  version: string;
  description: string;
  source: string;
  builtin: boolean;
  status: PluginStatus;
  error: string | null;
  contributes: { hooks: string[]; providers: string[]; channels: string[]; actions: string[]; pages: string[] };
}

/** Why a plugin could not be loaded at all; stable, for tests and tooling. */
export type PluginProblemCode = 'import_failed' | 'not_a_plugin' | 'invalid_plugin' | 'duplicate_id' | 'api_version_mismatch' | 'invalid_config' | 'duplicate_channel';

export interface PluginProblem {
  source: string;
  code: PluginProblemCode;
  message: string;
}

export class PluginLoadError extends Error {
  readonly code = 'plugin_load_failed';
  constructor(readonly problems: PluginProblem[]) {
    super('Plugins could not be loaded:\n' + problems.map((p) => `  ${p.source}: ${p.message}`).join('\n'));
    this.name = 'PluginLoadError';
  }
}

export interface PluginHostDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  events: EventBus;
  registries: Registries;
  baseUrl: string;
  settings: Record<string, unknown>;
  /** Settings the host derives from core configuration for a plugin (e.g. SMTP_URL for channel-email). */
  defaults?: Record<string, Record<string, unknown>>;
  getMerchant(publicId: string): Promise<PluginMerchant | null>;
  /** Merchant ids ↔ keys for plugin records (the merchants feature answers). */
  merchantKeys: MerchantResolver;
  /**
   * Checkout capabilities for a plugin's payment providers, scoped to that plugin (it reads and
   * authorizes only payments of providers it registered); built by the runtime once services exist.
   */
  checkout: (pluginId: string) => PluginCheckoutServices;
  /** Customer capabilities for actions; built by the runtime once services exist. */
  customers?: () => PluginCustomerServices;
  /** Subscription capabilities for a plugin's providers, scoped like `checkout`; built by the runtime once services exist. */
  subscriptions?: (pluginId: string) => PluginSubscriptionServices;
  /** The job queue `api.schedule.every` runs on (without it, scheduled work is never run). */
  jobs?: Pick<JobQueue, 'define'>;
  /** How long one plugin's register() may take before it is disabled, so a hung plugin cannot stall boot. */
  registerTimeoutMs?: number;
}

export interface PluginSource {
  source: string;
  builtin: boolean;
  load: () => Promise<unknown>;
}

export function builtinSources(dir: string): PluginSource[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(dir, d.name, 'index.ts')))
    .map((d) => d.name)
    .sort()
    .map((name) => ({ source: `plugins/${name}`, builtin: true, load: () => import(pathToFileURL(path.join(dir, name, 'index.ts')).href) }));
}

/** A PAYLINK_PLUGINS entry: a path (./x, /x, ../x) resolved from cwd, or an npm package name. */
export function externalSource(spec: string, cwd = process.cwd()): PluginSource {
  const isPath = spec.startsWith('.') || spec.startsWith('/');
  return {
    source: spec,
    builtin: false,
    load: async () => {
      registerPluginResolution(); // so the plugin's `import … from 'paylink/plugin-api'` resolves to this host
      if (isPath) return import(pathToFileURL(pluginEntry(path.resolve(cwd, spec))).href);
      const resolved = createRequire(path.join(cwd, 'package.json')).resolve(spec);
      return import(pathToFileURL(resolved).href);
    },
  };
}

function describeError(err: unknown): string {
  if (err && typeof err === 'object' && 'issues' in err && Array.isArray((err as z.ZodError).issues)) {
    return (err as z.ZodError).issues.map((i) => `${i.path.join('.') || 'config'}: ${i.message}`).join('; ');
  }
  return err instanceof Error ? err.message : String(err);
}

export const envNameFor = (id: string) => `PAYLINK_PLUGIN_${id.toUpperCase().replace(/-/g, '_')}`;
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isFn = (v: unknown) => typeof v === 'function';
const isName = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length <= 64;

/** A module's plugin: its default export, or the value itself when a loader hands over a definition. */
function pluginExport(mod: unknown): unknown {
  return isPlainObject(mod) && 'default' in mod ? mod.default : mod;
}

/** What register() asked for; applied only when register() completes and nothing conflicts. */
interface Staged {
  hooks: { event: EventType; handler: EventHandler<any> }[];
  providers: PaymentProvider<any>[];
  channels: Channel[];
  actions: AfterPaymentAction<any>[];
  pages: DashboardPage[];
  schedules: { name: string; cron: string; run: () => Promise<void> }[];
}

/** `'5m'` → `*\/5 * * * *`, `'2h'` → `0 *\/2 * * *`; null for anything else (minutes dividing 60, hours dividing 24). */
export function intervalCron(interval: unknown): string | null {
  const m = typeof interval === 'string' ? /^([1-9][0-9]?)(m|h)$/.exec(interval) : null;
  if (!m) return null;
  const n = Number(m[1]);
  if (m[2] === 'm') return n < 60 && 60 % n === 0 ? (n === 1 ? '* * * * *' : `*/${n} * * * *`) : null;
  return n <= 24 && 24 % n === 0 ? (n === 24 ? '0 0 * * *' : `0 */${n} * * *`) : null;
}

export class PluginHost {
  private readonly plugins: LoadedPlugin[] = [];
  private readonly pages: { pluginId: string; page: DashboardPage }[] = [];
  private readonly views = new Map<string, Eta>();
  /** Problems found while registering that stop the boot (two real channels with one id). */
  private readonly registerProblems: PluginProblem[] = [];
  /** Periodic plugin work (`api.schedule.every`): job kinds `plugin.<id>.<name>` and their cron; the runtime schedules them. */
  readonly sweeps: { cron: string; kind: string }[] = [];
  /** Public routes per plugin, mounted by the app under /p/<id>/. */
  readonly router: Router = express.Router();

  constructor(private readonly deps: PluginHostDeps) {}

  /** The checkout services a plugin gets (`api.services.checkout`), e.g. for tests that act as its vendor. */
  checkoutFor(pluginId: string): PluginCheckoutServices {
    return this.deps.checkout(pluginId);
  }

  list(): LoadedPlugin[] {
    return this.plugins.map((p) => ({
      ...p,
      contributes: {
        hooks: [...p.contributes.hooks],
        providers: [...p.contributes.providers],
        channels: [...p.contributes.channels],
        actions: [...p.contributes.actions],
        pages: [...p.contributes.pages],
      },
    }));
  }

  isActive(id: string): boolean {
    return this.plugins.some((p) => p.id === id && p.status === 'active');
  }

  dashboardPages(): { pluginId: string; page: DashboardPage }[] {
    return [...this.pages];
  }

  /** Renders a template of an active plugin (its viewsDir), e.g. an action's formFragment on the link form. */
  async renderView(pluginId: string, name: string, data: Record<string, unknown> = {}): Promise<string> {
    const eta = this.views.get(pluginId);
    if (!eta || !this.isActive(pluginId)) throw new Error(`plugin ${pluginId} is not active or has no views`);
    return eta.renderAsync(name, data);
  }

  /**
   * Imports and checks every source, then registers each valid plugin. Throws PluginLoadError when
   * any plugin cannot be loaded at all (missing module, bad shape, duplicate id, apiVersion, config),
   * or when two plugins register a real (non-fallback) channel with one id.
   */
  async load(sources: PluginSource[]): Promise<LoadedPlugin[]> {
    const problems: PluginProblem[] = [];
    const candidates: { def: PluginDefinition; source: PluginSource; config: unknown }[] = [];
    const seen = new Map<string, string>();

    for (const source of sources) {
      const problem = (code: PluginProblemCode, message: string) => problems.push({ source: source.source, code, message });
      let mod: unknown;
      try {
        mod = await source.load();
      } catch (err) {
        problem('import_failed', `cannot be imported: ${describeError(err)}`);
        continue;
      }
      const def = pluginExport(mod) as PluginDefinition;
      const shape = this.checkShape(def);
      if (shape) {
        problem(shape.code, shape.message);
        continue;
      }
      if (seen.has(def.id)) {
        problem('duplicate_id', `duplicate plugin id "${def.id}" (also loaded from ${seen.get(def.id)})`);
        continue;
      }
      seen.set(def.id, source.source);
      if (def.apiVersion !== PLUGIN_API_VERSION) {
        problem('api_version_mismatch', `"${def.id}" needs plugin apiVersion ${def.apiVersion}; this Paylink provides ${PLUGIN_API_VERSION}`);
        continue;
      }
      const settings = this.deps.settings[def.id];
      if (settings !== undefined && !isPlainObject(settings)) {
        problem('invalid_config', `invalid config for "${def.id}": ${envNameFor(def.id)} must be a JSON object`);
        continue;
      }
      const raw = { ...(this.deps.defaults?.[def.id] ?? {}), ...(settings ?? {}) };
      let config: unknown = raw;
      if (def.config) {
        const parsed = def.config.safeParse(raw);
        if (!parsed.success) {
          problem('invalid_config', `invalid config for "${def.id}" (${envNameFor(def.id)}): ${describeError(parsed.error)}`);
          continue;
        }
        config = parsed.data;
      }
      candidates.push({ def, source, config });
    }
    if (problems.length) throw new PluginLoadError(problems);
    for (const id of Object.keys(this.deps.settings)) {
      if (!seen.has(id)) this.deps.log.warn('settings given for a plugin that is not loaded', { variable: envNameFor(id) });
    }

    for (const c of candidates) await this.registerOne(c.def, c.source, c.config);
    if (this.registerProblems.length) throw new PluginLoadError(this.registerProblems);
    await this.persist();
    return this.list();
  }

  private checkShape(def: PluginDefinition | undefined): { code: PluginProblemCode; message: string } | null {
    const invalid = (message: string) => ({ code: 'invalid_plugin' as const, message });
    if (!def || typeof def !== 'object' || !('id' in def || 'register' in def)) {
      return { code: 'not_a_plugin', message: 'does not export a plugin (default export of definePlugin({...}))' };
    }
    if (typeof def.id !== 'string' || !PLUGIN_ID_PATTERN.test(def.id)) return invalid(`plugin id "${String(def.id)}" must look like <kind>-<vendor>, e.g. channel-email`);
    if (typeof def.version !== 'string' || !def.version) return invalid(`"${def.id}" has no version`);
    if (typeof def.apiVersion !== 'number') return invalid(`"${def.id}" has no apiVersion`);
    if (!isFn(def.register)) return invalid(`"${def.id}" has no register function`);
    if (def.config && !isFn((def.config as z.ZodType).safeParse)) return invalid(`"${def.id}" config must be a zod schema`);
    return null;
  }

  /** Why a plugin's registrations cannot all take effect (an id another plugin holds, or a repeat of its own). */
  private conflictIn(staged: Staged): string | null {
    const { registries } = this.deps;
    const repeated = (ids: string[]) => ids.find((id, i) => ids.indexOf(id) !== i);
    const provider = staged.providers.find((p) => registries.providers.has(p.id));
    if (provider) return `provider "${provider.id}" is already registered by ${registries.providers.ownerOf(provider.id)}`;
    const channel = staged.channels.find((c) => registries.channels.conflictFor(c));
    if (channel) return `${channel.fallback ? 'fallback ' : ''}channel "${channel.id}" is already registered by ${registries.channels.conflictFor(channel)}`;
    const action = staged.actions.find((a) => registries.actions.has(a.id));
    if (action) return `action "${action.id}" is already registered by ${registries.actions.ownerOf(action.id)}`;
    const shorthands = new Map(registries.actions.list().flatMap((a) => Object.keys(a.apiShorthand ?? {}).map((k) => [k, a.id] as const)));
    const shorthand = staged.actions.flatMap((a) => Object.keys(a.apiShorthand ?? {})).find((k, i, all) => shorthands.has(k) || all.indexOf(k) !== i);
    if (shorthand) return `after_payment shorthand "${shorthand}" is declared twice${shorthands.has(shorthand) ? ` (also by action "${shorthands.get(shorthand)}")` : ''}`;
    const twice =
      repeated(staged.providers.map((p) => `provider "${p.id}"`)) ??
      repeated(staged.channels.map((c) => `${c.fallback ? 'fallback ' : ''}channel "${c.id}"`)) ??
      repeated(staged.actions.map((a) => `action "${a.id}"`)) ??
      repeated(staged.pages.map((p) => `dashboard page "${p.path}"`));
    return twice ? `${twice} is registered twice` : null;
  }

  private async registerOne(def: PluginDefinition, source: PluginSource, config: unknown): Promise<void> {
    const { deps } = this;
    const log = deps.log.child(`plugin:${def.id}`);
    const record: LoadedPlugin = {
      id: def.id,
      version: def.version,
      description: def.description ?? '',
      source: source.source,
      builtin: source.builtin,
      status: 'active',
      error: null,
      contributes: { hooks: [], providers: [], channels: [], actions: [], pages: [] },
    };
    const staged: Staged = { hooks: [], providers: [], channels: [], actions: [], pages: [], schedules: [] };
    let sealed = false;
    // The first misuse of the api fails the plugin even if its register() catches the error.
    let misuse: Error | null = null;
    const refuse = (message: string): never => {
      const err = new Error(`${def.id}: ${message}`);
      misuse ??= err;
      throw err;
    };
    const stage = (what: string, ok: boolean, add: () => void) => {
      if (sealed) refuse(`${what} must be called during register()`);
      if (!ok) refuse(`${what} got an invalid registration`);
      add();
    };
    const routes = express.Router();
    const eta = def.viewsDir ? new Eta({ views: def.viewsDir, cache: true, autoEscape: true }) : null;
    const isActive = () => record.status === 'active';

    const api: PluginApi = Object.freeze({
      id: def.id,
      apiVersion: PLUGIN_API_VERSION,
      log,
      baseUrl: deps.baseUrl,
      now: () => deps.clock.now(),
      hooks: Object.freeze({
        on<T extends EventType>(event: T, handler: EventHandler<T>) {
          if (!isEventType(event)) refuse(`unknown event "${String(event)}"`);
          stage(`hooks.on("${event}")`, isFn(handler), () => staged.hooks.push({ event, handler }));
        },
      }),
      providers: Object.freeze({
        register<S>(provider: PaymentProvider<S>) {
          stage('providers.register', isProvider(provider), () => staged.providers.push(provider));
        },
      }),
      channels: Object.freeze({
        register(channel: Channel) {
          const problem = channelProblem(channel);
          stage(problem ? `channels.register (${problem})` : 'channels.register', !problem, () => staged.channels.push(channel));
        },
      }),
      actions: Object.freeze({
        register<S>(action: AfterPaymentAction<S>) {
          const ok = isPlainObject(action) && isName(action.id) && typeof action.label === 'string' && isFn(action.settings?.safeParse) && isFn(action.run) && actionExtrasOk(action);
          stage('actions.register (a formFragment needs viewsDir)', ok && (!action.formFragment || eta !== null), () => staged.actions.push(action));
        },
      }),
      routes,
      dashboard: Object.freeze({
        page(page: DashboardPage) {
          const ok = isPlainObject(page) && typeof page.path === 'string' && page.path.startsWith('/') && typeof page.title === 'string' && isFn(page.render);
          stage('dashboard.page (path must start with /)', ok, () => staged.pages.push(page));
        },
      }),
      views: Object.freeze({
        async render(name: string, data: Record<string, unknown> = {}) {
          if (!eta) throw new Error(`${def.id}: set viewsDir in definePlugin to render views`);
          return eta.renderAsync(name, data);
        },
      }),
      store: createPluginStore(deps.db, deps.clock, def.id, deps.merchantKeys),
      schedule: Object.freeze({
        every(name: string, interval: string, run: () => Promise<void>) {
          const cron = intervalCron(interval);
          const ok = typeof name === 'string' && /^[a-z0-9_-]{1,40}$/.test(name) && cron !== null && isFn(run) && !staged.schedules.some((x) => x.name === name);
          stage(`schedule.every("${String(name)}", "${String(interval)}")`, ok, () => staged.schedules.push({ name, cron: cron!, run }));
        },
      }),
      services: Object.freeze({
        merchants: Object.freeze({ get: (id: string) => deps.getMerchant(id) }),
        checkout: lazyCheckout(() => deps.checkout(def.id)),
        customers: Object.freeze({
          get: (merchantId: string, customerId: string) => customersOf(deps).get(merchantId, customerId),
          tags: (merchantId: string) => customersOf(deps).tags(merchantId),
          applyTag: (merchantId: string, customerId: string, tagId: string) => customersOf(deps).applyTag(merchantId, customerId, tagId),
          removeTag: (merchantId: string, customerId: string, tagId: string) => customersOf(deps).removeTag(merchantId, customerId, tagId),
        }),
        subscriptions: lazySubscriptions(() => {
          if (!deps.subscriptions) throw new Error('subscription services are not available in this host');
          return deps.subscriptions(def.id);
        }),
      }),
    });

    try {
      const registering = Promise.resolve().then(() => def.register(api, config as never));
      registering.catch(() => {}); // still settles after a timeout; its outcome no longer matters
      const limit = deps.registerTimeoutMs ?? 10_000;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`register() did not finish within ${limit} ms`)), limit);
        timer.unref();
      });
      try {
        await Promise.race([registering, timeout]);
      } finally {
        clearTimeout(timer);
        sealed = true;
      }
      if (misuse) throw misuse;
      // Two real channels with one id: which one sends would depend on load order, so the host does not start.
      for (const c of staged.channels.filter((c) => !c.fallback && deps.registries.channels.conflictFor(c))) {
        const other = deps.registries.channels.conflictFor(c);
        this.registerProblems.push({ source: source.source, code: 'duplicate_channel', message: `channel "${c.id}" is registered by both ${other} and ${def.id}: enable only one of them` });
      }
      // All or nothing: conflicts are found before anything is applied, so a failing plugin leaves nothing behind.
      const conflict = this.conflictIn(staged);
      if (conflict) throw new Error(conflict);
      this.apply(def.id, staged, record, isActive);
      if (eta) this.views.set(def.id, eta);
      this.router.use(`/${def.id}`, (req, res, next) => (isActive() ? routes(req, res, next) : next()));
      log.debug('plugin loaded', { version: def.version, source: source.source });
    } catch (err) {
      record.status = 'failed';
      record.error = describeError(err);
      log.error('plugin failed to register and is disabled', { error: err });
    }
    this.plugins.push(record);
  }

  private apply(pluginId: string, staged: Staged, record: LoadedPlugin, isActive: () => boolean): void {
    const { events, registries } = this.deps;
    // Subscriptions first: they are inert once the plugin is disabled, should anything after them throw.
    const perEvent = new Map<string, number>();
    for (const { event, handler } of staged.hooks) {
      const n = perEvent.get(event) ?? 0;
      perEvent.set(event, n + 1);
      // Stable across restarts as long as the plugin subscribes to this event in the same order.
      events.subscribe(event, `plugin:${pluginId}:${event}:${n}`, handler, isActive);
    }
    for (const p of staged.providers) registries.providers.add(p, pluginId);
    for (const c of staged.channels) registries.channels.add(c, pluginId);
    for (const a of staged.actions) registries.actions.add(a, pluginId);
    for (const page of staged.pages) this.pages.push({ pluginId, page });
    for (const x of staged.schedules) {
      const kind = `plugin.${pluginId}.${x.name}`;
      // A job like any other: claimed once across processes, retried with backoff when it throws.
      this.deps.jobs?.define(kind, async () => {
        if (isActive()) await x.run();
      });
      this.sweeps.push({ cron: x.cron, kind });
    }
    record.contributes = {
      hooks: staged.hooks.map((h) => h.event),
      providers: staged.providers.map((p) => p.id),
      channels: staged.channels.map((c) => c.id + (c.fallback ? ' (fallback)' : '')),
      actions: staged.actions.map((a) => a.id),
      pages: staged.pages.map((p) => p.title),
    };
  }

  private async persist(): Promise<void> {
    const now = this.deps.clock.now();
    for (const p of this.plugins) {
      const row = { version: p.version, source: p.source, status: p.status, error: p.error, last_loaded_at: now };
      await this.deps.db('plugins')
        .insert({ id: p.id, first_seen_at: now, ...row })
        .onConflict('id')
        .merge(['version', 'source', 'status', 'error', 'last_loaded_at']);
    }
  }
}

/** An action's optional parts, when given, have the right shape (shorthand keys: snake_case, not `actions`). */
function actionExtrasOk(action: AfterPaymentAction<unknown>): boolean {
  const optional = (v: unknown, ok: (v: unknown) => boolean) => v === undefined || ok(v);
  const shorthandOk = (v: unknown) => isPlainObject(v) && Object.entries(v).every(([k, f]) => /^[a-z][a-z0-9_]{0,63}$/.test(k) && k !== 'actions' && typeof f === 'string' && f.length > 0);
  return (
    optional(action.description, (v) => typeof v === 'string') &&
    optional(action.formFragment, (v) => typeof v === 'string' && v.length > 0) &&
    optional(action.requiresCustomer, (v) => typeof v === 'boolean') &&
    [action.fromForm, action.check, action.formData].every((f) => optional(f, isFn)) &&
    optional(action.apiShorthand, shorthandOk)
  );
}

function customersOf(deps: PluginHostDeps): PluginCustomerServices {
  if (!deps.customers) throw new Error('customer services are not available in this host');
  return deps.customers();
}

/** A provider registration's shape: the required methods, and the optional parts well-formed when present. */
function isProvider(p: PaymentProvider<any>): boolean {
  if (!isPlainObject(p) || !isName(p.id) || typeof p.name !== 'string' || ![p.start, p.capture, p.void, p.refund].every(isFn)) return false;
  if (p.methodLabel !== undefined && !(typeof p.methodLabel === 'string' && p.methodLabel.length > 0 && p.methodLabel.length <= 40)) return false;
  if (p.captureModel !== undefined && p.captureModel !== 'manual' && p.captureModel !== 'immediate' && !isFn(p.captureModel)) return false;
  if (p.holdMinutes !== undefined && !isFn(p.holdMinutes) && !validHoldMinutes(p.holdMinutes)) return false;
  if (p.checkoutOrigins !== undefined && !isFn(p.checkoutOrigins)) return false;
  if (p.forgetProfile !== undefined && !isFn(p.forgetProfile)) return false;
  if (p.subscriptions !== undefined && typeof p.subscriptions !== 'boolean') return false;
  if (p.cancelSubscription !== undefined && !isFn(p.cancelSubscription)) return false;
  const ms = p.merchantSettings;
  if (ms === undefined) return true;
  return isPlainObject(ms) && isFn(ms.schema?.safeParse) && (ms.secrets === undefined || (Array.isArray(ms.secrets) && ms.secrets.every(isName))) && (ms.verify === undefined || isFn(ms.verify)) && (ms.formFragment === undefined || typeof ms.formFragment === 'string');
}

/** Subscription capabilities resolved on first use (like `lazyCheckout`). */
function lazySubscriptions(make: () => PluginSubscriptionServices): PluginSubscriptionServices {
  let built: PluginSubscriptionServices | null = null;
  const get = () => (built ??= make());
  return Object.freeze({
    get: (id: string) => get().get(id),
    byRef: (ref: string) => get().byRef(ref),
    due: (opts: { before: Date; limit?: number }) => get().due(opts),
    renewed: (id: string, renewal: Parameters<PluginSubscriptionServices['renewed']>[1]) => get().renewed(id, renewal),
    setStatus: (id: string, status: 'active' | 'past_due') => get().setStatus(id, status),
    canceled: (id: string) => get().canceled(id),
  });
}

/** Checkout capabilities resolved on first use, so a host can be built before the checkout exists. */
function lazyCheckout(make: () => PluginCheckoutServices): PluginCheckoutServices {
  let built: PluginCheckoutServices | null = null;
  const get = () => (built ??= make());
  return Object.freeze({
    getSession: (sessionId: string) => get().getSession(sessionId),
    getPayment: (paymentId: string) => get().getPayment(paymentId),
    settingsFor: <S,>(merchantId: string, providerId?: string) => get().settingsFor<S>(merchantId, providerId),
    authorize: (paymentId: string, providerRef: string, opts?: { paymentMethod?: PaymentMethodInfo; subscriptionRef?: string }) => get().authorize(paymentId, providerRef, opts),
    decline: (paymentId: string, failure: { code: string; message: string }) => get().decline(paymentId, failure),
    retry: (sessionId: string) => get().retry(sessionId),
    expire: (paymentId: string) => get().expire(paymentId),
    recordRefund: (paymentId: string, refund: { providerRef: string; amount: number; reason?: string | null }) => get().recordRefund(paymentId, refund),
    flagDispute: (paymentId: string, dispute: { providerRef: string; status: string; amount: number; reason?: string | null }) => get().flagDispute(paymentId, dispute),
    setSupportReference: (paymentId: string, reference: string) => get().setSupportReference(paymentId, reference),
    flagOutcome: (paymentId: string, outcome: AmountOutcome) => get().flagOutcome(paymentId, outcome),
    pendingPayments: (opts: { startedBefore: Date; limit?: number }) => get().pendingPayments(opts),
    saveProfile: (paymentId: string, profile: SavedProfileRef) => get().saveProfile(paymentId, profile),
    dropProfile: (merchantId: string, ref: string) => get().dropProfile(merchantId, ref),
  });
}
