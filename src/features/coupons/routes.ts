// Dashboard pages for coupons (mounted under /app): list, new, edit, activate/deactivate, delete, and
// one coupon's redemptions.
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { ValidationError, type FieldError } from '../../core/errors.ts';
import { formatMoney, parseDecimalAmount, toDecimalString } from '../../core/money.ts';
import { dayKeyIn, startOfDay, addDays, dateIn, dateTimeIn } from '../../core/time.ts';
import { formErrors } from '../../web/view.ts';
import { currencyOptions, currencySchema, type Merchant } from '../merchants/index.ts';
import { couponCreateSchema, discountLabel, type Coupon } from './service.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'coupons'>;

interface CouponFormValues {
  code: string;
  kind: 'percent' | 'amount';
  percent_off: string;
  amount_off: string;
  currency: string;
  valid_from: string;
  valid_until: string;
  max_redemptions: string;
  active: boolean;
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** The posted form → service input. Days are the merchant's: valid from the start of the first, until the end of the last. */
function couponInput(body: Record<string, unknown>, merchant: Merchant): Record<string, unknown> {
  const errors: FieldError[] = [];
  const input: Record<string, unknown> = { code: text(body.code), active: body.active === 'on' };
  const code = couponCreateSchema.shape.code.safeParse(input.code);
  if (!code.success) errors.push({ field: 'code', code: 'invalid_code', message: code.error.issues[0].message });
  if (body.kind === 'amount') {
    const currency = currencySchema.safeParse(body.currency);
    if (!currency.success) errors.push({ field: 'currency', code: 'invalid_currency', message: currency.error.issues[0].message });
    else input.currency = currency.data;
    if (!text(body.amount_off).trim()) errors.push({ field: 'amount_off', code: 'required', message: 'Enter the amount off, such as 5.00.' });
    else if (currency.success) {
      const parsed = parseDecimalAmount(text(body.amount_off), currency.data);
      if (parsed.ok) input.amount_off = parsed.minor;
      else errors.push({ field: 'amount_off', code: parsed.code, message: parsed.message });
    }
    input.percent_off = null;
  } else {
    const typed = text(body.percent_off).trim().replace(/\s*%$/, '');
    const n = Number(typed);
    if (!typed) errors.push({ field: 'percent_off', code: 'required', message: 'Enter the percentage off, such as 10.' });
    else if (!/^\d+(\.\d{1,2})?$/.test(typed) || !(n > 0) || n >= 100) errors.push({ field: 'percent_off', code: 'invalid_percent', message: 'Enter a percentage from 0.01 to 99.99, with at most two decimals.' });
    else input.percent_off = n;
    input.amount_off = null;
    input.currency = null;
  }
  for (const [field, end] of [['valid_from', false], ['valid_until', true]] as const) {
    const day = text(body[field]).trim();
    if (!day) {
      input[field] = null;
      continue;
    }
    const at = startOfDay(day, merchant.timezone, end ? 1 : 0);
    if (!at) errors.push({ field, code: 'invalid_date', message: 'Enter a date such as 2026-12-31.' });
    else input[field] = at.toISOString();
  }
  const max = text(body.max_redemptions).trim();
  if (!max) input.max_redemptions = null;
  else if (!/^\d{1,7}$/.test(max) || Number(max) < 1 || Number(max) > 1_000_000) errors.push({ field: 'max_redemptions', code: 'invalid_number', message: 'Enter a whole number from 1 to 1000000, or leave it empty for no maximum.' });
  else input.max_redemptions = Number(max);
  if (errors.length) throw new ValidationError(errors);
  return input;
}

export function couponsRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { coupons } = rt;

  const values = (c: Coupon, m: Merchant): CouponFormValues => ({
    code: c.code,
    kind: c.percentOff !== null ? 'percent' : 'amount',
    percent_off: c.percentOff !== null ? String(c.percentOff) : '',
    amount_off: c.amountOff !== null ? toDecimalString(c.amountOff, c.currency!) : '',
    currency: c.currency ?? m.currency,
    valid_from: c.validFrom ? dayKeyIn(c.validFrom, m.timezone) : '',
    // Stored as the end (exclusive): the form shows the last day it is valid.
    valid_until: c.validUntil ? addDays(dayKeyIn(c.validUntil, m.timezone), -1) : '',
    max_redemptions: c.maxRedemptions === null ? '' : String(c.maxRedemptions),
    active: c.active,
  });
  const posted = (body: Record<string, unknown>): CouponFormValues => ({
    code: text(body.code),
    kind: body.kind === 'amount' ? 'amount' : 'percent',
    percent_off: text(body.percent_off),
    amount_off: text(body.amount_off),
    currency: text(body.currency).trim().toUpperCase(),
    valid_from: text(body.valid_from),
    valid_until: text(body.valid_until),
    max_redemptions: text(body.max_redemptions),
    active: body.active === 'on',
  });
  const summary = (c: Coupon, m: Merchant) => ({
    ...c,
    label: discountLabel(c),
    window: c.validFrom || c.validUntil ? `${c.validFrom ? `from ${dateIn(c.validFrom, m.timezone)}` : ''}${c.validFrom && c.validUntil ? ' ' : ''}${c.validUntil ? `until ${dateIn(new Date(c.validUntil.getTime() - 1), m.timezone)}` : ''}` : 'Always',
    uses: `${c.redeemedCount}${c.maxRedemptions === null ? '' : ` of ${c.maxRedemptions}`}`,
  });

  const formPage = (req: express.Request, res: express.Response, data: { coupon: Coupon | null; values: CouponFormValues; errors?: Record<string, string> }, status = 200) =>
    render(req, res, 'coupons/form', { title: data.coupon ? `Edit ${data.coupon.code}` : 'New coupon', currencies: currencyOptions(), errors: {}, ...data, errorCount: Object.keys(data.errors ?? {}).length }, status);

  router.get('/coupons', async (req, res) => {
    const merchant: Merchant = res.locals.merchant;
    const after = typeof req.query.after === 'string' ? req.query.after : undefined;
    const page = await coupons.list(merchant.key, { limit: 100, starting_after: after }).catch((err) => {
      if (err instanceof ValidationError) return coupons.list(merchant.key, { limit: 100 });
      throw err;
    });
    await render(req, res, 'coupons/index', { title: 'Coupons', coupons: page.data.map((c) => summary(c, merchant)), hasMore: page.has_more, after: after ?? null });
  });

  router.get('/coupons/new', (req, res) => {
    const m: Merchant = res.locals.merchant;
    return formPage(req, res, { coupon: null, values: { code: '', kind: 'percent', percent_off: '', amount_off: '', currency: m.currency, valid_from: '', valid_until: '', max_redemptions: '', active: true } });
  });

  router.post('/coupons', async (req, res) => {
    const body = req.body as Record<string, unknown>;
    try {
      const coupon = await coupons.create(res.locals.merchant.key, couponInput(body, res.locals.merchant));
      flash(req, 'success', `Coupon ${coupon.code} added.`);
      res.redirect(303, '/app/coupons');
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      await formPage(req, res, { coupon: null, values: posted(body), errors }, 422);
    }
  });

  router.get('/coupons/:id', async (req, res) => {
    const merchant: Merchant = res.locals.merchant;
    const coupon = await coupons.get(merchant.key, String(req.params.id));
    const after = typeof req.query.after === 'string' ? req.query.after : undefined;
    const page = await coupons.redemptions(merchant.key, coupon.id, { limit: 100, starting_after: after }).catch((err) => {
      if (err instanceof ValidationError) return coupons.redemptions(merchant.key, coupon.id, { limit: 100 });
      throw err;
    });
    await render(req, res, 'coupons/show', {
      title: `Coupon ${coupon.code}`,
      coupon: summary(coupon, merchant),
      redemptions: page.data.map((r) => ({ ...r, before: formatMoney(r.amountBefore, r.currency), off: formatMoney(r.amountOff, r.currency), at: dateTimeIn(r.redeemedAt ?? r.createdAt, merchant.timezone) })),
      hasMore: page.has_more,
      after: after ?? null,
    });
  });

  router.get('/coupons/:id/edit', async (req, res) => {
    const coupon = await coupons.get(res.locals.merchant.key, String(req.params.id));
    await formPage(req, res, { coupon, values: values(coupon, res.locals.merchant) });
  });

  router.post('/coupons/:id', async (req, res) => {
    const merchantKey = res.locals.merchant.key;
    const coupon = await coupons.get(merchantKey, String(req.params.id));
    const body = req.body as Record<string, unknown>;
    try {
      const saved = await coupons.update(merchantKey, coupon.id, couponInput(body, res.locals.merchant));
      flash(req, 'success', `Coupon ${saved.code} saved.`);
      res.redirect(303, '/app/coupons');
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      await formPage(req, res, { coupon, values: posted(body), errors }, 422);
    }
  });

  const setActive = (active: boolean) => async (req: express.Request, res: express.Response) => {
    const merchantKey = res.locals.merchant.key;
    const coupon = await coupons.get(merchantKey, String(req.params.id));
    await coupons.update(merchantKey, coupon.id, { active });
    flash(req, 'success', `Coupon ${coupon.code} ${active ? 'activated' : 'deactivated'}.${active ? '' : ' Customers can no longer use it.'}`);
    res.redirect(303, '/app/coupons');
  };
  router.post('/coupons/:id/activate', setActive(true));
  router.post('/coupons/:id/deactivate', setActive(false));

  router.get('/coupons/:id/delete', async (req, res) => {
    const coupon = await coupons.get(res.locals.merchant.key, String(req.params.id));
    await render(req, res, 'coupons/delete', { title: `Delete ${coupon.code}`, coupon });
  });

  router.post('/coupons/:id/delete', async (req, res) => {
    const merchantKey = res.locals.merchant.key;
    const coupon = await coupons.get(merchantKey, String(req.params.id));
    await coupons.remove(merchantKey, coupon.id);
    flash(req, 'success', `Coupon ${coupon.code} deleted.`);
    res.redirect(303, '/app/coupons');
  });

  return router;
}
