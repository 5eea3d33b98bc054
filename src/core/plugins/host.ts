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
import type { z } from 'zod';
import type { Db } from '../db.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { EventBus, EventHandler, EventType } from '../events.ts';
import { isEventType } from '../events.ts';
import { createPluginStore } from './store.ts';
import type { Registries } from './registries.ts';
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

export class PluginLoadError extends Error {
  readonly code = 'plugin_load_failed';
  constructor(readonly problems: { source: string; message: string }[]) {
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
  /** Optional: skip built-ins (tests that load one plugin alone). */
  builtinsDir?: string | null;
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
      if (isPath) return import(pathToFileURL(path.resolve(cwd, spec)).href);
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

export class PluginHost {
  private readonly plugins: LoadedPlugin[] = [];
  private readonly pages: { pluginId: string; page: DashboardPage }[] = [];
  /** Public routes per plugin, mounted by the app under /p/<id>/. */
  readonly router: Router = express.Router();

  constructor(private readonly deps: PluginHostDeps) {}

  list(): LoadedPlugin[] {
    return this.plugins.map((p) => ({ ...p }));
  }

  isActive(id: string): boolean {
    return this.plugins.some((p) => p.id === id && p.status === 'active');
  }

  dashboardPages(): { pluginId: string; page: DashboardPage }[] {
    return [...this.pages];
  }

  /**
   * Imports and checks every source, then registers each valid plugin. Throws PluginLoadError when
   * any plugin cannot be loaded at all (missing module, bad shape, duplicate id, apiVersion, config).
   */
  async load(sources: PluginSource[]): Promise<LoadedPlugin[]> {
    const problems: { source: string; message: string }[] = [];
    const candidates: { def: PluginDefinition; source: PluginSource; config: unknown }[] = [];
    const seen = new Map<string, string>();

    for (const source of sources) {
      let mod: unknown;
      try {
        mod = await source.load();
      } catch (err) {
        problems.push({ source: source.source, message: `cannot be imported: ${describeError(err)}` });
        continue;
      }
      const def = ((mod as { default?: unknown })?.default ?? mod) as PluginDefinition;
      const shape = this.checkShape(def);
      if (shape) {
        problems.push({ source: source.source, message: shape });
        continue;
      }
      if (seen.has(def.id)) {
        problems.push({ source: source.source, message: `duplicate plugin id "${def.id}" (also loaded from ${seen.get(def.id)})` });
        continue;
      }
      seen.set(def.id, source.source);
      if (def.apiVersion !== PLUGIN_API_VERSION) {
        problems.push({ source: source.source, message: `"${def.id}" needs plugin apiVersion ${def.apiVersion}; this Paylink provides ${PLUGIN_API_VERSION}` });
        continue;
      }
      const raw = { ...(this.deps.defaults?.[def.id] ?? {}), ...((this.deps.settings[def.id] as object | undefined) ?? {}) };
      let config: unknown = raw;
      if (def.config) {
        const parsed = def.config.safeParse(raw);
        if (!parsed.success) {
          problems.push({ source: source.source, message: `invalid config for "${def.id}" (PAYLINK_PLUGIN_${def.id.toUpperCase().replace(/-/g, '_')}): ${describeError(parsed.error)}` });
          continue;
        }
        config = parsed.data;
      }
      candidates.push({ def, source, config });
    }
    if (problems.length) throw new PluginLoadError(problems);

    for (const c of candidates) await this.registerOne(c.def, c.source, c.config);
    await this.persist();
    return this.list();
  }

  private checkShape(def: PluginDefinition | undefined): string | null {
    if (!def || typeof def !== 'object') return 'does not export a plugin (default export of definePlugin({...}))';
    if (typeof def.id !== 'string' || !PLUGIN_ID_PATTERN.test(def.id)) return `plugin id "${String(def.id)}" must look like <kind>-<vendor>, e.g. channel-email`;
    if (typeof def.version !== 'string' || !def.version) return `"${def.id}" has no version`;
    if (typeof def.apiVersion !== 'number') return `"${def.id}" has no apiVersion`;
    if (typeof def.register !== 'function') return `"${def.id}" has no register function`;
    if (def.config && typeof (def.config as z.ZodType).safeParse !== 'function') return `"${def.id}" config must be a zod schema`;
    return null;
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
    // Registrations are staged and applied only if register() completes, so a failing plugin leaves nothing behind.
    const staged: (() => void)[] = [];
    let sealed = false;
    const guard = (what: string) => {
      if (sealed) throw new Error(`${def.id}: ${what} must be called during register()`);
    };
    const routes = express.Router();
    const eta = def.viewsDir ? new Eta({ views: def.viewsDir, cache: true, autoEscape: true }) : null;
    const isActive = () => record.status === 'active';
    const pages = this.pages;
    let hookCount = 0;

    const api: PluginApi = Object.freeze({
      id: def.id,
      apiVersion: PLUGIN_API_VERSION,
      log,
      baseUrl: deps.baseUrl,
      hooks: Object.freeze({
        on<T extends EventType>(event: T, handler: EventHandler<T>) {
          guard('hooks.on');
          if (!isEventType(event)) throw new Error(`${def.id}: unknown event "${String(event)}"`);
          if (typeof handler !== 'function') throw new Error(`${def.id}: hooks.on("${event}") needs a handler function`);
          const subId = `plugin:${def.id}:${event}:${hookCount++}`;
          staged.push(() => {
            deps.events.subscribe(event, subId, handler, isActive);
            record.contributes.hooks.push(event);
          });
        },
      }),
      providers: Object.freeze({
        register(provider: PaymentProvider) {
          guard('providers.register');
          staged.push(() => {
            deps.registries.providers.add(provider, def.id);
            record.contributes.providers.push(provider.id);
          });
        },
      }),
      channels: Object.freeze({
        register(channel: Channel) {
          guard('channels.register');
          staged.push(() => {
            deps.registries.channels.add(channel, def.id);
            record.contributes.channels.push(channel.id + (channel.fallback ? ' (fallback)' : ''));
          });
        },
      }),
      actions: Object.freeze({
        register<S>(action: AfterPaymentAction<S>) {
          guard('actions.register');
          staged.push(() => {
            deps.registries.actions.add(action, def.id);
            record.contributes.actions.push(action.id);
          });
        },
      }),
      routes,
      dashboard: Object.freeze({
        page(page: DashboardPage) {
          guard('dashboard.page');
          if (!page.path.startsWith('/')) throw new Error(`${def.id}: dashboard page path must start with /`);
          staged.push(() => {
            pages.push({ pluginId: def.id, page });
            record.contributes.pages.push(page.title);
          });
        },
      }),
      views: Object.freeze({
        async render(name: string, data: Record<string, unknown> = {}) {
          if (!eta) throw new Error(`${def.id}: set viewsDir in definePlugin to render views`);
          return eta.renderAsync(name, data);
        },
      }),
      store: createPluginStore(deps.db, deps.clock, def.id),
      services: Object.freeze({ merchants: Object.freeze({ get: (id: string) => deps.getMerchant(id) }) }),
    });

    try {
      await def.register(api, config as never);
      sealed = true;
      // Apply all staged registrations; a conflict (e.g. a provider id taken) fails the whole plugin.
      const applied: (() => void)[] = [];
      for (const apply of staged) {
        apply();
        applied.push(apply);
      }
      this.router.use(`/${def.id}`, (req, res, next) => (isActive() ? routes(req, res, next) : next()));
      log.info('plugin loaded', { version: def.version, source: source.source });
    } catch (err) {
      sealed = true;
      record.status = 'failed';
      record.error = describeError(err);
      log.error('plugin failed to register and is disabled', { error: err });
    }
    this.plugins.push(record);
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
