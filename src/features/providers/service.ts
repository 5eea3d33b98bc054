/**
 * Payment providers per merchant (Settings → Payments, `GET/PATCH /api/v1/providers`): which of the
 * registered providers a merchant takes payments with, and each one's settings. Owns the
 * `merchant_providers` table.
 *
 * Enabled rule: a row says it. Without a row, a provider that declares `enabledByDefault` (the
 * sandbox) is enabled and every other one is not — so a fresh install takes test payments at once,
 * a merchant who turns the sandbox off keeps it off (the row remembers), and a real provider is only
 * used once the merchant has configured and enabled it. A provider is offered to customers only while
 * it is enabled AND its stored settings still pass its schema ("configured").
 *
 * Secrets (the keys a provider lists in `merchantSettings.secrets`) are sealed with AES-256-GCM
 * (src/core/encryption.ts), bound to the merchant and provider, and never leave this service except
 * to the provider itself. A blank secret on save keeps the stored one.
 */
import { z } from 'zod';
import type { Db } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { ChangeFeed } from '../../core/changes.ts';
import type { Sealer } from '../../core/encryption.ts';
import { AppError, NotFoundError, ServiceUnavailableError, ValidationError, fieldErrorsFromZod, type FieldError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { providerErrorOf, type Registries } from '../../core/plugins/registries.ts';
import type { PaymentProvider } from '../../plugin-api.ts';

type Settings = Record<string, unknown>;

/** A provider as one merchant sees it. */
export interface MerchantProvider {
  id: string;
  name: string;
  /** The plugin that registered it. */
  plugin: string;
  /** What customers pick on the pay page. */
  methodLabel: string;
  enabled: boolean;
  /** Enabled and configured: offered to customers. */
  usable: boolean;
  /** Needs no settings, or its stored settings pass its schema. */
  configured: boolean;
  /** Whether the provider takes per-merchant settings at all. */
  hasSettings: boolean;
  /** The non-secret values as stored. */
  settings: Settings;
  /** Secret keys that have a stored value. */
  secretsSet: string[];
  /** Keys the provider lists as secrets. */
  secretKeys: string[];
}

/** A provider a checkout can use for a merchant, with its parsed settings (secrets included). */
export interface ActiveProvider {
  provider: PaymentProvider<any>;
  settings: unknown;
}

interface Row {
  provider: string;
  enabled: number | boolean;
  settings: string;
  secrets: string | null;
}

export const providerPatchSchema = z.strictObject(
  {
    enabled: z.boolean({ error: 'enabled must be true or false.' }).optional(),
    settings: z.record(z.string(), z.unknown(), { error: 'settings must be an object.' }).optional(),
  },
  { error: 'Send an object with "enabled" and/or "settings".' },
);
export type ProviderPatch = z.infer<typeof providerPatchSchema>;

const isBlank = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '');

export function createProviderSettingsService(deps: { db: Db; clock: Clock; registries: Registries; sealer: Sealer; changes?: ChangeFeed }) {
  const { db, clock, registries, sealer } = deps;
  const context = (merchantKey: number, providerId: string) => `merchant_providers:${merchantKey}:${providerId}`;
  const secretKeysOf = (p: PaymentProvider<any>) => p.merchantSettings?.secrets ?? [];

  function providerOr404(providerId: string): PaymentProvider<any> {
    const p = registries.providers.get(providerId);
    if (!p) throw new NotFoundError(`No payment provider "${providerId}" is installed.`);
    return p;
  }

  /** Stored settings with secrets opened (what the provider gets, before its schema parses it). */
  function storedSettings(merchantKey: number, row: Row | undefined): { plain: Settings; secret: Settings } {
    if (!row) return { plain: {}, secret: {} };
    const plain = JSON.parse(row.settings) as Settings;
    const secret = row.secrets ? (JSON.parse(sealer.open(row.secrets, context(merchantKey, row.provider))) as Settings) : {};
    return { plain, secret };
  }

  /** The provider's parsed settings, or null when they do not pass its schema (not configured). */
  function parsed(p: PaymentProvider<any>, all: Settings): unknown | null {
    if (!p.merchantSettings) return {};
    const r = p.merchantSettings.schema.safeParse(all);
    return r.success ? r.data : null;
  }

  function view(merchantKey: number, p: PaymentProvider<any>, row: Row | undefined): MerchantProvider {
    const { plain, secret } = storedSettings(merchantKey, row);
    const configured = parsed(p, { ...plain, ...secret }) !== null;
    const enabled = row ? Boolean(row.enabled) : p.enabledByDefault === true;
    return {
      id: p.id,
      name: p.name,
      plugin: registries.providers.ownerOf(p.id) ?? '',
      methodLabel: p.methodLabel ?? p.name,
      enabled,
      usable: enabled && configured,
      configured,
      hasSettings: Boolean(p.merchantSettings),
      settings: plain,
      secretsSet: Object.keys(secret).filter((k) => !isBlank(secret[k])),
      secretKeys: secretKeysOf(p),
    };
  }

  const rowsOf = async (merchantKey: number): Promise<Map<string, Row>> =>
    new Map(((await db('merchant_providers').where({ merchant_id: merchantKey }).select('provider', 'enabled', 'settings', 'secrets')) as Row[]).map((r) => [r.provider, r]));

  const service = {
    /** Every installed provider, in registration order, as this merchant has it. */
    async list(merchantKey: number): Promise<MerchantProvider[]> {
      const rows = await rowsOf(merchantKey);
      return registries.providers.list().map((p) => view(merchantKey, p, rows.get(p.id)));
    },

    async get(merchantKey: number, providerId: string): Promise<MerchantProvider> {
      const p = providerOr404(providerId);
      const row = (await db('merchant_providers').where({ merchant_id: merchantKey, provider: providerId }).first()) as Row | undefined;
      return view(merchantKey, p, row);
    },

    /** The providers customers of this merchant can pay with now (enabled and configured), in registration order. */
    async usable(merchantKey: number): Promise<ActiveProvider[]> {
      const rows = await rowsOf(merchantKey);
      const out: ActiveProvider[] = [];
      for (const p of registries.providers.list()) {
        const row = rows.get(p.id);
        if (!(row ? Boolean(row.enabled) : p.enabledByDefault === true)) continue;
        const { plain, secret } = storedSettings(merchantKey, row);
        const settings = parsed(p, { ...plain, ...secret });
        if (settings !== null) out.push({ provider: p, settings });
      }
      return out;
    },

    /**
     * A provider's parsed settings for a merchant whether or not it is enabled now (a payment started
     * with it is still captured, voided or refunded with them); null when not configured.
     */
    async settingsFor(merchantKey: number, providerId: string): Promise<unknown | null> {
      const p = registries.providers.get(providerId);
      if (!p) return null;
      const row = (await db('merchant_providers').where({ merchant_id: merchantKey, provider: providerId }).first()) as Row | undefined;
      const { plain, secret } = storedSettings(merchantKey, row);
      return parsed(p, { ...plain, ...secret });
    },

    /**
     * Enables/disables a provider and/or saves its settings. Settings are merged into what is stored
     * (a blank secret keeps the stored one) and validated whole by the provider's schema (errors by
     * `settings.<key>`), then by its `verify`. Enabling a provider that is not configured →
     * 422 `provider_not_configured`.
     */
    async update(merchantKey: number, providerId: string, raw: unknown): Promise<MerchantProvider> {
      const p = providerOr404(providerId);
      const patch = parseBody(providerPatchSchema, raw);
      const row = (await db('merchant_providers').where({ merchant_id: merchantKey, provider: providerId }).first()) as Row | undefined;
      const stored = storedSettings(merchantKey, row);
      const secretKeys = secretKeysOf(p);
      let plain = stored.plain;
      let secret = stored.secret;

      if (patch.settings !== undefined) {
        if (!p.merchantSettings) {
          throw new ValidationError([{ field: 'settings', code: 'no_settings', message: `${p.name} takes no settings.` }]);
        }
        const merged: Settings = { ...stored.plain, ...stored.secret };
        for (const [k, v] of Object.entries(patch.settings)) {
          if (k === '__proto__' || k === 'constructor' || k === 'prototype') continue;
          if (secretKeys.includes(k) && isBlank(v)) continue; // write-only: blank keeps what is stored
          merged[k] = typeof v === 'string' ? v.trim() : v;
        }
        const result = p.merchantSettings.schema.safeParse(merged);
        if (!result.success) {
          throw new ValidationError(fieldErrorsFromZod(result.error.issues).map((e) => ({ ...e, field: e.field === '_' ? 'settings' : `settings.${e.field}` })));
        }
        const data = (result.data ?? {}) as Settings;
        const problems = await verify(p, data);
        if (problems.length) throw new ValidationError(problems);
        plain = Object.fromEntries(Object.entries(data).filter(([k]) => !secretKeys.includes(k)));
        secret = Object.fromEntries(Object.entries(data).filter(([k]) => secretKeys.includes(k)));
      }

      const enabled = patch.enabled ?? (row ? Boolean(row.enabled) : p.enabledByDefault === true);
      if (enabled && parsed(p, { ...plain, ...secret }) === null) {
        throw new AppError('provider_not_configured', 422, `Set up ${p.name} before enabling it.`, {
          errors: [{ field: 'enabled', code: 'provider_not_configured', message: `Save ${p.name}’s settings first.` }],
        });
      }

      const now = clock.now();
      const values = {
        enabled,
        settings: JSON.stringify(plain),
        secrets: Object.keys(secret).length ? sealer.seal(JSON.stringify(secret), context(merchantKey, providerId)) : null,
        updated_at: now,
      };
      await db('merchant_providers')
        .insert({ merchant_id: merchantKey, provider: providerId, created_at: now, ...values })
        .onConflict(['merchant_id', 'provider'])
        .merge(['enabled', 'settings', 'secrets', 'updated_at']);
      // Pay pages cache which providers a merchant offers: drop those caches (here and, via Redis, elsewhere).
      deps.changes?.notify();
      return service.get(merchantKey, providerId);
    },
  };

  async function verify(p: PaymentProvider<any>, settings: Settings): Promise<FieldError[]> {
    if (!p.merchantSettings?.verify) return [];
    try {
      const problems = (await p.merchantSettings.verify(settings)) ?? [];
      return problems.map((x) => ({ field: `settings.${x.field}`, code: 'rejected_by_provider', message: String(x.message).slice(0, 300) }));
    } catch (err) {
      const pe = providerErrorOf(err);
      if (pe && !pe.retryable) return [{ field: 'settings', code: pe.code, message: pe.message.slice(0, 300) }];
      throw new ServiceUnavailableError(`${p.name} could not be reached to check these settings. Try again in a moment.`, err);
    }
  }

  return service;
}

export type ProviderSettingsService = ReturnType<typeof createProviderSettingsService>;
