import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { flash, wantsFragment, type Renderer } from '../../core/http.ts';
import { ValidationError } from '../../core/errors.ts';
import { settingsValues } from '../merchants/index.ts';
import { VIEW_RETENTION, currencyOptions, localeOptions, timezoneOptions, viewRetentionOptions } from '../merchants/index.ts';
import { paymentSettingsRoutes } from './payments.ts';
import { KEY_ROLES, ROLE_HELP, ROLE_LABELS, can } from '../../core/access.ts';
import { formatMoney } from '../../core/money.ts';
import { BUTTON_LABELS, BUTTON_LABEL_WORDS, BUTTON_STYLES, BUTTON_STYLE_NAMES, LOGO_MAX_BYTES, payBranding, uploadOf } from '../branding/index.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'apiKeys' | 'branding' | 'merchants'> & Parameters<typeof paymentSettingsRoutes>[1];

export function settingsRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { merchants, apiKeys } = rt;
  const base = {
    currencies: currencyOptions(),
    timezones: timezoneOptions(),
    locales: localeOptions(),
    keyRoles: KEY_ROLES.map((value) => ({ value, label: `${ROLE_LABELS[value]} — ${ROLE_HELP[value]}` })),
    roleLabels: ROLE_LABELS,
    money: formatMoney,
    buttonStyles: BUTTON_STYLES.map((value) => ({ value, label: BUTTON_STYLE_NAMES[value] })),
    buttonLabels: BUTTON_LABELS.map((value) => ({ value, label: BUTTON_LABEL_WORDS[value] })),
    logoMaxMb: LOGO_MAX_BYTES / 1024 / 1024,
  };

  router.use('/settings', (_req, res, next) => {
    // These pages carry API key material (a new secret, once): never into any cache or history.
    res.set('Cache-Control', 'no-store');
    next();
  });

  const page = async (req: express.Request, res: express.Response, extra: Record<string, unknown> = {}, status = 200) => {
    const merchant = res.locals.merchant;
    const values: Record<string, unknown> = (extra.values as Record<string, unknown> | undefined) ?? settingsValues(merchant);
    await render(
      req,
      res,
      'settings/index',
      {
        title: 'Settings',
        ...base,
        errors: {},
        // A role that cannot manage keys sees its own sign-in only (the page skips the rest).
        keys: can(merchant.actor?.role ?? 'owner', 'api_key.manage') ? await apiKeys.list(merchant.key) : [],
        newKey: null,
        look: payBranding(merchant),
        brandingValues: { button_style: merchant.buttonStyle, button_label: merchant.buttonLabel },
        brandingErrors: {},
        ...extra,
        values,
        retention: { choices: viewRetentionOptions(values.view_retention_months), default: VIEW_RETENTION.default },
      },
      status,
    );
  };

  router.get('/settings', (req, res) => page(req, res));

  router.post('/settings', async (req, res) => {
    try {
      const updated = await merchants.updateSettings(res.locals.merchant, req.body);
      req.user!.merchant = updated;
      res.locals.merchant = updated;
      flash(req, 'success', 'Settings saved.');
      if (wantsFragment(req)) return page(req, res);
      res.redirect(303, '/app/settings');
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      await page(req, res, { values: { ...req.body }, errors: err.byField() }, 422);
    }
  });

  /**
   * Settings → Payment page: the logo (a multipart upload, parsed before CSRF in app.ts), the button
   * style and label. All or nothing: any bad field is a 422 by the field and nothing is saved.
   */
  router.post('/settings/branding', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const upload = uploadOf(req);
    try {
      const updated = await rt.branding.saveLook(res.locals.merchant, {
        button_style: body.button_style,
        button_label: body.button_label,
        remove_logo: body.remove_logo === 'on',
        logo: upload && upload.field === 'logo' ? upload : null,
      });
      req.user!.merchant = updated;
      res.locals.merchant = updated;
      flash(req, 'success', 'Payment page look saved.');
      res.redirect(303, '/app/settings#branding');
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      const text = (v: unknown) => (typeof v === 'string' ? v : '');
      await page(req, res, { brandingValues: { button_style: text(body.button_style), button_label: text(body.button_label) }, brandingErrors: err.byField() }, 422);
    }
  });

  /** Defaults for new payment requests (a checkbox, so absent means off). */
  router.post('/settings/requests', async (req, res) => {
    const on = (req.body as Record<string, unknown>).request_allow_refresh === 'on';
    const updated = await merchants.setRequestAllowRefresh(res.locals.merchant, on);
    req.user!.merchant = updated;
    res.locals.merchant = updated;
    flash(req, 'success', on ? 'New payment requests let the customer ask for a new link once they expire.' : 'New payment requests no longer offer a new link once they expire (unless you tick it on the request).');
    res.redirect(303, '/app/settings#requests');
  });

  // Reloading the page a key was created on lands here: show the settings, never re-create the key.
  router.get('/settings/api-keys', (_req, res) => res.redirect(303, '/app/settings#api-keys'));

  router.post('/settings/api-keys', async (req, res) => {
    try {
      const { apiKey, secret } = await apiKeys.create(res.locals.merchant, req.body);
      // The secret is shown in this response only; it is never stored in plain text.
      await page(req, res, { newKey: { ...apiKey, secret } }, 201);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      const body = req.body as Record<string, unknown>;
      const text = (v: unknown) => (typeof v === 'string' ? v : '');
      await page(req, res, { keyErrors: err.byField(), keyValues: { name: text(body.name), role: text(body.role), amount_cap: text(body.amount_cap) } }, 422);
    }
  });

  router.post('/settings/api-keys/:id/revoke', async (req, res) => {
    const key = await apiKeys.revoke(res.locals.merchant, String(req.params.id));
    flash(req, 'success', `API key “${key.name}” revoked. Requests using it now fail.`);
    if (wantsFragment(req)) return page(req, res);
    res.redirect(303, '/app/settings#api-keys');
  });

  // Settings → Payments: the payment providers this merchant offers.
  paymentSettingsRoutes(router, rt, render);

  return router;
}
