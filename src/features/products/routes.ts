import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { ValidationError, type FieldError } from '../../core/errors.ts';
import { formatMoney, parseDecimalAmount, toDecimalString } from '../../core/money.ts';
import { currencyOptions, currencySchema } from '../merchants/index.ts';
import { productCreateSchema, recurringSchema, type Product } from './service.ts';
import { formErrors } from '../../web/view.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'products'>;

interface ProductFormValues {
  name: string;
  description: string;
  price: string;
  currency: string;
  active: boolean;
  /** '' (one-time) or day|week|month|year, with its count and trial days as typed. */
  interval: string;
  interval_count: string;
  trial_days: string;
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** The posted product form → service input; the price is typed as a decimal in the currency's precision. */
function productInput(body: Record<string, unknown>): Record<string, unknown> {
  const errors: FieldError[] = [];
  const input: Record<string, unknown> = { name: body.name, description: body.description ?? '', active: body.active === 'on' };
  const currency = currencySchema.safeParse(body.currency);
  if (!currency.success) errors.push({ field: 'currency', code: 'invalid_currency', message: currency.error.issues[0].message });
  else input.currency = currency.data;
  if (!text(body.price).trim()) errors.push({ field: 'price', code: 'required', message: 'Enter the price, such as 12.50.' });
  else if (currency.success) {
    // The ceiling is the service's to judge: only a new price is held to it.
    const parsed = parseDecimalAmount(text(body.price), currency.data, { ceiling: false });
    if (parsed.ok) input.price = parsed.minor;
    else errors.push({ field: 'price', code: parsed.code, message: parsed.message });
  }
  input.recurring = recurringInput(body, errors);
  if (errors.length) {
    // Every message at once: the schema's for the other fields too.
    const rest = productCreateSchema.safeParse({ ...input, price: 1, currency: 'EUR' });
    const more = rest.success ? [] : rest.error.issues.map((i) => ({ field: String(i.path[0] ?? '_'), code: i.code, message: i.message }));
    throw new ValidationError([...errors, ...more]);
  }
  return input;
}

/** "Billing": one-time, or every N intervals with optional trial days → the service's `recurring` (errors by field). */
function recurringInput(body: Record<string, unknown>, errors: FieldError[]): unknown {
  const interval = text(body.interval);
  if (!interval) return null;
  const whole = (v: string, field: string, label: string): number | null | undefined => {
    const t = v.trim();
    if (!t) return null;
    if (/^\d{1,6}$/.test(t)) return Number(t);
    errors.push({ field, code: 'invalid_number', message: `Enter ${label} as a whole number.` });
    return undefined;
  };
  const count = whole(text(body.interval_count), 'recurring.interval_count', 'how many');
  const trial = whole(text(body.trial_days), 'recurring.trial_days', 'the trial days');
  const parsed = recurringSchema.safeParse({ interval, interval_count: count ?? 1, trial_days: trial ?? null });
  if (!parsed.success) {
    for (const i of parsed.error.issues) errors.push({ field: ['recurring', ...i.path.map(String)].join('.'), code: i.code, message: i.message });
    return undefined;
  }
  return count === undefined || trial === undefined ? undefined : { interval, interval_count: count ?? 1, trial_days: trial };
}

/** Dashboard pages for products (mounted under /app). */
export function productsRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { products } = rt;

  const values = (p: Product): ProductFormValues => ({ name: p.name, description: p.description ?? '', price: toDecimalString(p.price, p.currency), currency: p.currency, active: p.active,
    interval: p.recurring?.interval ?? '', interval_count: p.recurring ? String(p.recurring.count) : '1', trial_days: p.recurring?.trialDays ? String(p.recurring.trialDays) : '' });
  const posted = (body: Record<string, unknown>): ProductFormValues => ({
    name: text(body.name),
    description: text(body.description),
    price: text(body.price),
    currency: text(body.currency).trim().toUpperCase(),
    active: body.active === 'on',
    interval: text(body.interval),
    interval_count: text(body.interval_count),
    trial_days: text(body.trial_days),
  });

  const formPage = (req: express.Request, res: express.Response, data: { product: Product | null; values: ProductFormValues; errors?: Record<string, string> }, status = 200) =>
    render(
      req,
      res,
      'products/form',
      { title: data.product ? `Edit ${data.product.name}` : 'New product', currencies: currencyOptions(), errors: {}, ...data, errorCount: Object.keys(data.errors ?? {}).length },
      status,
    );

  router.get('/products', async (req, res) => {
    const merchant = res.locals.merchant;
    const after = typeof req.query.after === 'string' ? req.query.after : undefined;
    const page = await products.list(merchant.key, { limit: 100, starting_after: after }).catch((err) => {
      // A stale "next page" address: start from the top rather than fail.
      if (err instanceof ValidationError) return products.list(merchant.key, { limit: 100 });
      throw err;
    });
    await render(req, res, 'products/index', { title: 'Products', products: page.data, hasMore: page.has_more, after: after ?? null, formatMoney, date: (d: Date) => d.toLocaleDateString('en-GB', { timeZone: merchant.timezone, dateStyle: 'medium' }) });
  });

  router.get('/products/new', (req, res) =>
    formPage(req, res, { product: null, values: { name: '', description: '', price: '', currency: res.locals.merchant.currency, active: true, interval: '', interval_count: '1', trial_days: '' } }),
  );

  router.post('/products', async (req, res) => {
    const body = req.body as Record<string, unknown>;
    try {
      const product = await products.create(res.locals.merchant.key, productInput(body));
      flash(req, 'success', `Product “${product.name}” added.`);
      res.redirect(303, '/app/products');
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      await formPage(req, res, { product: null, values: posted(body), errors }, 422);
    }
  });

  router.get('/products/:id/edit', async (req, res) => {
    const product = await products.get(res.locals.merchant.key, String(req.params.id));
    await formPage(req, res, { product, values: values(product) });
  });

  router.post('/products/:id', async (req, res) => {
    const merchantKey = res.locals.merchant.key;
    const product = await products.get(merchantKey, String(req.params.id));
    const body = req.body as Record<string, unknown>;
    try {
      const saved = await products.update(merchantKey, product.id, productInput(body));
      flash(req, 'success', `Product “${saved.name}” saved. Links selling it now charge ${formatMoney(saved.price, saved.currency)}.`);
      res.redirect(303, '/app/products');
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      await formPage(req, res, { product, values: posted(body), errors }, 422);
    }
  });

  const setActive = (active: boolean) => async (req: express.Request, res: express.Response) => {
    const merchantKey = res.locals.merchant.key;
    const product = await products.get(merchantKey, String(req.params.id));
    await products.update(merchantKey, product.id, { active });
    flash(req, 'success', `Product “${product.name}” ${active ? 'activated' : 'deactivated'}.${active ? '' : ' New product links cannot use it.'}`);
    res.redirect(303, '/app/products');
  };
  router.post('/products/:id/activate', setActive(true));
  router.post('/products/:id/deactivate', setActive(false));

  router.get('/products/:id/delete', async (req, res) => {
    const product = await products.get(res.locals.merchant.key, String(req.params.id));
    await render(req, res, 'products/delete', { title: `Delete ${product.name}`, product, formatMoney });
  });

  router.post('/products/:id/delete', async (req, res) => {
    const merchantKey = res.locals.merchant.key;
    const product = await products.get(merchantKey, String(req.params.id));
    await products.remove(merchantKey, product.id);
    flash(req, 'success', `Product “${product.name}” deleted.`);
    res.redirect(303, '/app/products');
  });

  return router;
}
