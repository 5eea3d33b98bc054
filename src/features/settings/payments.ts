/**
 * Settings → Payments (`/app/settings/payments`): which providers the merchant's customers can pay
 * with, and each provider's settings. One form per provider: "Offer to customers" and its fields
 * (the provider's form fragment, or one input per key of its schema). Secrets are write-only: the
 * form shows "set — leave blank to keep" and never their value.
 */
import express from 'express';
import { z } from 'zod';
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { AppError } from '../../core/errors.ts';
import type { MerchantProvider } from '../providers/index.ts';
import { toPluginMerchant, type Merchant } from '../merchants/index.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'eta' | 'plugins' | 'providers' | 'registries' | 'config'>;

/** One provider's panel: what it is, and its fields' HTML. */
interface ProviderPanel extends MerchantProvider {
  fieldsHtml: string;
  errors: Record<string, string>;
  saved: boolean;
  /** The "Offer to customers" box: as submitted after a failed save, else as stored. */
  offer: boolean;
}

const fieldName = (key: string) => `settings.${key}`;
const fieldId = (providerId: string, key: string) => `f-${providerId}-${key}`.replace(/[^\w-]/g, '-');

/** The last value of a form field (a hidden "0" before a checkbox "1" arrives as both). */
const lastOf = (v: unknown): string | undefined => (Array.isArray(v) ? lastOf(v[v.length - 1]) : typeof v === 'string' ? v : undefined);

/** The posted `settings.<key>` fields as a settings object. */
function settingsFromForm(body: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) {
    const value = lastOf(v);
    if (k.startsWith('settings.') && value !== undefined) out[k.slice('settings.'.length)] = value;
  }
  return out;
}

/** The keys of a `z.object` schema (for the default form); empty for any other schema. */
function schemaKeys(schema: unknown): { key: string; optional: boolean }[] {
  if (!(schema instanceof z.ZodObject)) return [];
  return Object.entries(schema.shape as Record<string, z.ZodType>).map(([key, t]) => ({ key, optional: t.safeParse(undefined).success }));
}

/** `webhookSecret` → "Webhook secret". */
const label = (key: string) =>
  key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[_-]+/g, ' ')
    .toLowerCase()
    .replace(/^./, (c) => c.toUpperCase());

export function paymentSettingsRoutes(router: express.Router, rt: Deps, render: Renderer): void {
  const { providers } = rt;

  async function fieldsHtml(merchant: Merchant, p: MerchantProvider, values: Record<string, unknown>, errors: Record<string, string>): Promise<string> {
    const provider = rt.registries.providers.get(p.id);
    const ms = provider?.merchantSettings;
    if (!ms) return '';
    const data = {
      settings: values,
      secretsSet: p.secretsSet,
      secrets: p.secretKeys,
      errors,
      name: fieldName,
      id: (key: string) => fieldId(p.id, key),
      merchant: toPluginMerchant(merchant),
      baseUrl: rt.config.baseUrl,
    };
    if (ms.formFragment) return rt.plugins.renderView(p.plugin, ms.formFragment, data);
    return rt.eta.renderAsync('/settings/_provider_fields', {
      ...data,
      fields: schemaKeys(ms.schema).map((f) => ({ ...f, label: label(f.key), secret: p.secretKeys.includes(f.key) })),
    });
  }

  async function page(req: express.Request, res: express.Response, failed: { id: string; enabled: boolean; values: Record<string, string>; errors: Record<string, string> } | null = null, status = 200) {
    const merchant = res.locals.merchant;
    const list = await providers.list(merchant.key);
    const panels: ProviderPanel[] = [];
    for (const p of list) {
      const mine = failed?.id === p.id ? failed : null;
      // After a failed save the form shows what was typed (never a secret); otherwise what is stored.
      const values = mine ? Object.fromEntries(Object.entries(mine.values).filter(([k]) => !p.secretKeys.includes(k))) : p.settings;
      const errors = mine?.errors ?? {};
      panels.push({ ...p, fieldsHtml: await fieldsHtml(merchant, p, values, errors), errors, saved: false, offer: mine ? mine.enabled : p.enabled });
    }
    await render(req, res, 'settings/payments', { title: 'Payments', providers: panels, usableCount: list.filter((p) => p.usable).length }, status);
  }

  router.get('/settings/payments', (req, res) => page(req, res));

  router.post('/settings/payments/:id', async (req, res) => {
    const merchant = res.locals.merchant;
    const id = String(req.params.id);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const current = await providers.get(merchant.key, id);
    const settings = settingsFromForm(body);
    const patch = { enabled: lastOf(body.enabled) === '1', ...(current.hasSettings && Object.keys(settings).length ? { settings } : {}) };
    try {
      const saved = await providers.update(merchant.key, id, patch);
      flash(req, 'success', `${saved.name}: ${saved.enabled ? 'offered to your customers' : 'not offered to your customers'}. Settings saved.`);
      res.redirect(303, `/app/settings/payments#provider-${id}`);
    } catch (err) {
      if (!(err instanceof AppError) || err.status !== 422) throw err;
      const errors: Record<string, string> = {};
      for (const e of err.errors) errors[e.field.replace(/^settings\.?/, '') || '_'] ??= e.message;
      if (!err.errors.length) errors._ = err.userMessage;
      await page(req, res, { id, enabled: patch.enabled, values: settings, errors }, 422);
    }
  });
}
