import express from 'express';
import { overCapMessage, ownScope } from '../../core/access.ts';
import type { AppDeps } from '../../web/deps.ts';
import { flash, wantsFragment, type Renderer } from '../../core/http.ts';
import type { Merchant } from '../merchants/index.ts';
import { dateIn, dateTimeIn, formErrors, formatPhone, tagNamesFrom } from '../../web/view.ts';
import { AppError, ServiceUnavailableError, ValidationError } from '../../core/errors.ts';
import { currencyDigits, formatMoney, parseDecimalAmount } from '../../core/money.ts';
import type { Customer } from './service.ts';
import { countryOptions } from './schemas.ts';
import { IMPORT_COLUMNS, IMPORT_MAX_BYTES, IMPORT_MAX_ROWS, importCustomers, type ImportProblem } from './import.ts';
import { listHref, readListQuery, type ListQuery } from './view.ts';
import { deliveryRow } from '../deliveries/index.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'clock' | 'customers' | 'deliveries' | 'sending' | 'tags' | 'profiles' | 'savedProfiles'>;

const PER_PAGE = 25;
/** Messages shown on a customer's page, newest first. */
const DELIVERIES_SHOWN = 20;
/** Problems listed on the import page; the rest are counted. */
const PROBLEMS_SHOWN = 200;

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** What the form shows: strings as typed, so a 422 gives back exactly what was written. */
interface CustomerFormValues {
  name: string;
  email: string;
  phone: string;
  country: string;
  address: string;
  /** Channels' own address kinds, by kind (form fields `addresses.<kind>`). */
  addresses: Record<string, string>;
  tags: string[];
  new_tags: string;
}

const emptyValues = (): CustomerFormValues => ({ name: '', email: '', phone: '', country: '', address: '', addresses: {}, tags: [], new_tags: '' });

const valuesOf = (c: Customer): CustomerFormValues => ({
  name: c.name,
  email: c.email ?? '',
  phone: c.phone ? formatPhone(c.phone) : '',
  country: '',
  address: c.address ?? '',
  addresses: { ...c.addresses },
  tags: c.tags.map((t) => t.name),
  new_tags: '',
});

/** The posted custom addresses (`addresses.<kind>` fields) of the kinds the form shows. */
const postedAddresses = (body: Record<string, unknown>, kinds: string[]): Record<string, string> =>
  Object.fromEntries(kinds.filter((k) => body[`addresses.${k}`] !== undefined).map((k) => [k, text(body[`addresses.${k}`])]));

const postedValues = (body: Record<string, unknown>, kinds: string[]): CustomerFormValues => ({
  name: text(body.name),
  email: text(body.email),
  phone: text(body.phone),
  country: text(body.country).trim().toUpperCase(),
  address: text(body.address),
  addresses: postedAddresses(body, kinds),
  tags: tagNamesFrom({ tags: body.tags }),
  new_tags: text(body.new_tags),
});

/** The posted form → the customer service's input (which validates it all). */
function customerInput(body: Record<string, unknown>, kinds: string[]): Record<string, unknown> {
  const country = text(body.country).trim();
  const addresses = postedAddresses(body, kinds);
  return {
    name: body.name ?? '',
    email: body.email ?? '',
    phone: body.phone ?? '',
    ...(country ? { country } : {}),
    address: body.address ?? '',
    ...(Object.keys(addresses).length ? { addresses } : {}),
    tags: tagNamesFrom(body),
  };
}

/** Dashboard pages for customers (mounted under /app). */
export function customersRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { customers, tags } = rt;
  const { channels } = rt.deliveries;
  /** The custom address kinds the form shows (one field each). */
  const kindIds = () => customers.addressKinds().map((k) => k.kind);

  const merchantOf = (res: express.Response): Merchant => res.locals.merchant;

  const helpers = (merchant: Merchant) => ({
    phone: formatPhone,
    date: (d: Date) => dateIn(d, merchant.timezone, merchant.locale),
    dateTime: (d: Date) => dateTimeIn(d, merchant.timezone, merchant.locale),
  });

  // ---- List -------------------------------------------------------------------------------------

  router.get('/customers', async (req, res) => {
    const merchant = merchantOf(res);
    const query = readListQuery(req.query as Record<string, unknown>);
    const [result, customerTags] = await Promise.all([
      customers.search(merchant.key, { q: query.q || undefined, tag: query.tag || undefined, page: query.page, perPage: PER_PAGE, only: ownScope(merchant.actor) }),
      tags.list(merchant.key, 'customer'),
    ]);
    const filtered = Boolean(query.q || query.tag);
    // Who saved a card at checkout (one query for the page).
    const saved = await rt.profiles.byCustomers(result.items.map((c) => c.key));
    const data = {
      title: 'Customers',
      query,
      result,
      savedCards: (key: number) => saved.get(key)?.map((p) => p.label) ?? [],
      customerTags,
      filtered,
      // Nothing on page 1 without filters: this merchant has no customers yet.
      none: !filtered && query.page === 1 && !result.items.length,
      listHref: (change: Partial<ListQuery>) => listHref(query, change),
      h: helpers(merchant),
    };
    // htmx (the live search, the tag filter) gets the results and the list's tidy address.
    if (wantsFragment(req)) res.set('HX-Push-Url', listHref(query));
    await render(req, res, wantsFragment(req) ? 'customers/_results' : 'customers/index', data);
  });

  // ---- New / edit -------------------------------------------------------------------------------

  /** The form's 422: messages by field, and the customer who already has the email (email_taken). */
  const formFailure = async (merchantKey: number, err: unknown): Promise<{ errors: Record<string, string>; existing: Customer | null } | null> => {
    const errors = formErrors(err);
    if (!errors) return null;
    const existingId = err instanceof AppError && err.code === 'email_taken' ? err.options.extra?.existing_id : null;
    const existing = typeof existingId === 'string' ? await customers.get(merchantKey, existingId).catch(() => null) : null;
    return { errors, existing };
  };

  const formPage = async (
    req: express.Request,
    res: express.Response,
    opts: { customer: Customer | null; values: CustomerFormValues; errors?: Record<string, string>; existing?: Customer | null },
    status = 200,
  ) => {
    const errors = opts.errors ?? {};
    await render(
      req,
      res,
      'customers/form',
      {
        title: opts.customer ? `Edit ${opts.customer.name}` : 'New customer',
        customer: opts.customer,
        existing: opts.existing ?? null,
        values: opts.values,
        errors,
        errorCount: Object.keys(errors).length,
        customerTags: await tags.list(merchantOf(res).key, 'customer'),
        countries: countryOptions(),
        addressKinds: customers.addressKinds().map((k) => ({ kind: k.kind, label: k.label, channels: channels.list().filter((c) => c.addressKind === k.kind).map((c) => c.label) })),
      },
      status,
    );
  };

  router.get('/customers/new', (req, res) => formPage(req, res, { customer: null, values: emptyValues() }));

  router.post('/customers', async (req, res) => {
    const body = req.body as Record<string, unknown>;
    try {
      const customer = await customers.create(merchantOf(res).key, customerInput(body, kindIds()), { userKey: merchantOf(res).actor?.userKey ?? null });
      flash(req, 'success', `Customer “${customer.name}” added.`);
      res.redirect(303, `/app/customers/${customer.id}`);
    } catch (err) {
      const failed = await formFailure(merchantOf(res).key, err);
      if (!failed) throw err;
      await formPage(req, res, { customer: null, values: postedValues(body, kindIds()), ...failed }, 422);
    }
  });

  // ---- Import (before /customers/:id) -----------------------------------------------------------

  const importPage = (
    req: express.Request,
    res: express.Response,
    data: { csv: string; country: string; problems?: ImportProblem[] },
    status = 200,
  ) => {
    const problems = data.problems ?? [];
    return render(
      req,
      res,
      'customers/import',
      {
        title: 'Import customers',
        csv: data.csv,
        country: data.country,
        problems: problems.slice(0, PROBLEMS_SHOWN),
        problemCount: problems.length,
        problemRows: new Set(problems.map((p) => p.row)).size,
        columns: IMPORT_COLUMNS,
        addressKinds: customers.addressKinds(),
        maxRows: IMPORT_MAX_ROWS,
        maxMb: IMPORT_MAX_BYTES / (1024 * 1024),
        countries: countryOptions(),
      },
      status,
    );
  };

  router.get('/customers/import', (req, res) => importPage(req, res, { csv: '', country: '' }));

  router.post('/customers/import', async (req, res) => {
    const body = req.body as Record<string, unknown>;
    const csv = text(body.csv);
    const country = text(body.country).trim().toUpperCase();
    const known = countryOptions().some((c) => c.code === country);
    const outcome = await importCustomers(customers, merchantOf(res).key, csv, { defaultCountry: known ? country : undefined });
    if (!outcome.ok) return importPage(req, res, { csv, country: known ? country : '', problems: outcome.problems }, 422);
    flash(req, 'success', `Imported ${outcome.imported.toLocaleString('en')} customer${outcome.imported === 1 ? '' : 's'}.`);
    res.redirect(303, '/app/customers');
  });

  // ---- One customer -----------------------------------------------------------------------------

  interface TextToPayForm {
    values: { amount: string; description: string; channel: string };
    errors: Record<string, string>;
  }

  /** The customer's page; `ttp` is the Text-to-Pay form as posted (after a 422). */
  const showPage = async (req: express.Request, res: express.Response, customer: Customer, ttp: TextToPayForm = { values: { amount: '', description: '', channel: '' }, errors: {} }, status = 200) => {
    const merchant = merchantOf(res);
    const options = channels.options(customer);
    // Text-to-Pay goes by a text channel that reaches the customer: SMS when it can, else the first.
    const textIds = rt.sending.textChannels().map((c) => c.id);
    const textOptions = options.filter((o) => textIds.includes(o.id));
    const reachable = textOptions.filter((o) => o.enabled);
    const chosen = reachable.find((o) => o.id === ttp.values.channel) ?? reachable.find((o) => o.id === 'sms') ?? reachable[0] ?? null;
    const sms = options.find((c) => c.id === 'sms');
    const shown = (o: { id: string; address: string | null }) => (channels.get(o.id)?.addressKind === 'phone' && o.address ? formatPhone(o.address) : (o.address ?? ''));
    const deliveries = await rt.deliveries.listForCustomer(merchant.key, customer.key, DELIVERIES_SHOWN);
    const now = rt.clock.now();
    const digits = currencyDigits(merchant.currency);
    await render(
      req,
      res,
      'customers/show',
      {
        title: customer.name,
        customer,
        channels: options,
        addresses: customers.addressKinds().map((k) => ({ kind: k.kind, label: k.label, value: customer.addresses[k.kind] ?? null })),
        deliveries: deliveries.map((d) => deliveryRow(d, now, merchant.timezone, channels)),
        profiles: await rt.savedProfiles.forCustomer(customer.key),
        textToPay: {
          enabled: chosen !== null,
          reason: chosen ? null : (sms?.reason ?? textOptions[0]?.reason ?? 'No text channel is installed'),
          channels: reachable.map((o) => ({ id: o.id, label: o.label, address: shown(o), checked: o.id === chosen?.id })),
          channel: chosen && { ...chosen, address: shown(chosen) },
          currency: merchant.currency,
          currencyHint: `Such as ${digits === 0 ? '1250' : digits === 3 ? '12.500' : '12.50'}.`,
          ...ttp,
          values: { ...ttp.values, channel: chosen?.id ?? '' },
        },
        h: helpers(merchant),
      },
      status,
    );
  };

  router.get('/customers/:id', async (req, res) => {
    const customer = await customers.get(merchantOf(res).key, String(req.params.id), ownScope(merchantOf(res).actor));
    await showPage(req, res, customer);
  });

  /**
   * Text-to-Pay: the amount typed as a decimal in the merchant's currency, sent by SMS as a one-off,
   * single-use link. Problems come back by the fields (422) and nothing is sent.
   */
  router.post('/customers/:id/text-to-pay', async (req, res) => {
    const merchant = merchantOf(res);
    const customer = await customers.get(merchant.key, String(req.params.id), ownScope(merchant.actor));
    const body = req.body as Record<string, unknown>;
    const values = { amount: text(body.amount), description: text(body.description), channel: text(body.channel) };
    let amountError: string | null = null;
    let amount: number | null = null;
    if (!values.amount.trim()) amountError = 'Enter the amount to request, such as 12.50.';
    else {
      const parsed = parseDecimalAmount(values.amount, merchant.currency);
      if (parsed.ok) amount = parsed.minor;
      else amountError = parsed.message;
    }
    try {
      // A bad amount is sent as null, which the service always refuses: its other messages come too.
      const { link, channel } = await rt.sending.textToPay(merchant, customer.id, { amount, description: values.description, channel: values.channel || undefined });
      const info = channels.get(channel)!;
      const to = channels.addressFor(customer, channel)!;
      const money = formatMoney(link.amount ?? amount!, link.currency);
      const address = info.addressKind === 'phone' ? formatPhone(to) : to;
      if (info.keeps) flash(req, 'info', `Payment request for ${money} kept in the Outbox (${info.keeps.reason}): nothing went to ${address}.`, info.keeps.help);
      else flash(req, 'success', `Payment request for ${money} sent to ${address} by ${info.label}.`);
      res.redirect(303, `/app/customers/${customer.id}`);
    } catch (err) {
      const overCap = overCapMessage(err);
      if (overCap) return showPage(req, res, customer, { values, errors: { amount: overCap } }, 403);
      if (!(err instanceof ValidationError)) throw err;
      const errors = err.byField();
      if (amountError) errors.amount = amountError;
      await showPage(req, res, customer, { values, errors }, 422);
    }
  });

  /** Removes a saved payment profile: the provider deletes the card first (unreachable → the page says so, nothing removed). */
  router.post('/customers/:id/payment-profiles/:profileId/delete', async (req, res) => {
    const merchant = merchantOf(res);
    const customer = await customers.get(merchant.key, String(req.params.id), ownScope(merchant.actor));
    const profile = await rt.profiles.get(merchant.key, customer.key, String(req.params.profileId));
    if (!profile) {
      flash(req, 'info', 'Those saved payment details were removed already.');
      return res.redirect(303, `/app/customers/${customer.id}`);
    }
    try {
      await rt.savedProfiles.forget(profile);
    } catch (err) {
      if (!(err instanceof ServiceUnavailableError)) throw err;
      flash(req, 'error', err.userMessage);
      return res.redirect(303, `/app/customers/${customer.id}`);
    }
    flash(req, 'success', `${profile.label} (${rt.savedProfiles.providerName(profile.provider)}) removed: ${customer.name} will not be offered it again.`);
    res.redirect(303, `/app/customers/${customer.id}`);
  });

  router.get('/customers/:id/edit', async (req, res) => {
    const customer = await customers.get(merchantOf(res).key, String(req.params.id), ownScope(merchantOf(res).actor));
    await formPage(req, res, { customer, values: valuesOf(customer) });
  });

  router.post('/customers/:id', async (req, res) => {
    const merchantKey = merchantOf(res).key;
    const customer = await customers.get(merchantKey, String(req.params.id), ownScope(merchantOf(res).actor));
    const body = req.body as Record<string, unknown>;
    try {
      const saved = await customers.update(merchantKey, customer.id, customerInput(body, kindIds()), ownScope(merchantOf(res).actor));
      flash(req, 'success', `Customer “${saved.name}” saved.`);
      res.redirect(303, `/app/customers/${customer.id}`);
    } catch (err) {
      const failed = await formFailure(merchantKey, err);
      if (!failed) throw err;
      await formPage(req, res, { customer, values: postedValues(body, kindIds()), ...failed }, 422);
    }
  });

  router.get('/customers/:id/delete', async (req, res) => {
    const customer = await customers.get(merchantOf(res).key, String(req.params.id), ownScope(merchantOf(res).actor));
    await render(req, res, 'customers/delete', { title: `Delete ${customer.name}`, customer });
  });

  router.post('/customers/:id/delete', async (req, res) => {
    const merchantKey = merchantOf(res).key;
    const customer = await customers.get(merchantKey, String(req.params.id), ownScope(merchantOf(res).actor));
    await customers.remove(merchantKey, customer.id);
    flash(req, 'success', `Customer “${customer.name}” deleted. Their payments and messages stay in your reports.`);
    res.redirect(303, '/app/customers');
  });

  return router;
}
