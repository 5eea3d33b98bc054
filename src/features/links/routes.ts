import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { flash, wantsFragment, type Renderer } from '../../core/http.ts';
import { AppError, ValidationError, type FieldError } from '../../core/errors.ts';
import { safeNext } from '../accounts/index.ts';
import { overCapMessage, ownScope } from '../../core/access.ts';
import { currencyOptions } from '../merchants/index.ts';
import type { Merchant } from '../merchants/index.ts';
import { qrPaths } from '../qr/index.ts';
import { conversionRate, remaining, type Link } from './service.ts';
import { createInputErrors, formFieldErrors, linkValues, newLinkValues, newSendValues, postedSendValues, postedValues, sendInput, updateInput, type LinkFormValues, type LinkType, type SendFormValues } from './form.ts';
import { firstEmptyRow } from './collect-form.ts';
import { createActionForms, type ActionFormState } from '../actions/index.ts';
import type { AfterPaymentPlan } from '../actions/index.ts';
import { actionCustomer } from '../actions/index.ts';
import { toPluginMerchant } from '../merchants/index.ts';
import { linkBrandingChoices, linkBrandingFormValues, postedLinkBrandingValues } from '../branding/index.ts';
import type { Customer } from '../customers/index.ts';
import { CUSTOMER_CHOICES, createSendSections } from './send-section.ts';
import { KINDS, appliedFilters, isFiltered, listHref, paymentsText, priceText, readListQuery, sourceOptions, sourceText, statusBadge, statusGroups, toSearch } from './view.ts';
import { dateIn, dateTimeIn, formErrors, madeByText, one, pageWindow } from '../../web/view.ts';
import { formatMoney } from '../../core/money.ts';
import { dayPattern } from '../../core/time.ts';
import { dailyChart } from '../analytics/index.ts';
import { linkPageSending } from '../sending/index.ts';
import { ACTIVITY_ID, ACTIVITY_PER_PAGE, LIVE_TRIGGER_ID, activityHref, activityPanel, activityRows, limitCard, linkMetrics, readActivityQuery, type ActivityQuery } from '../analytics/index.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'actions' | 'analytics' | 'apiKeys' | 'clock' | 'config' | 'customers' | 'deliveries' | 'links' | 'log' | 'merchants' | 'plugins' | 'products' | 'registries' | 'sending' | 'subscriptions' | 'tags'> & Parameters<typeof linkPageSending>[0];

/** A form error's list of field errors (validation, a taken path, an immutable field), or null. */
function fieldErrorList(err: unknown): FieldError[] | null {
  return err instanceof AppError && (err.status === 409 || err.status === 422) && err.errors.length ? err.errors : null;
}

/** Runs a validation and collects its field errors instead of throwing them. */
async function collecting(errors: FieldError[], fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const list = fieldErrorList(err);
    if (!list) throw err;
    errors.push(...list);
  }
}

const isType = (v: unknown): v is LinkType => v === 'amount' || v === 'product' || v === 'items';

/** Dashboard pages for links (mounted under /app). */
export function linksRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { links, products, tags } = rt;
  const sendingParts = linkPageSending(rt);

  const merchantOf = (res: express.Response): Merchant => res.locals.merchant;

  /** Everything a page needs to show links: the view helpers, bound to the merchant. */
  const helpers = (merchant: Merchant) => ({
    url: (link: Link) => links.urlFor(link, merchant),
    badge: statusBadge,
    price: priceText,
    money: formatMoney,
    payments: paymentsText,
    metrics: (link: Link) => linkMetrics(link, { remaining: remaining(link), conversionRate: conversionRate(link) }),
    date: (d: Date) => dateIn(d, merchant.timezone, merchant.locale),
    dateTime: (d: Date) => dateTimeIn(d, merchant.timezone, merchant.locale),
  });

  /**
   * What a list row needs besides: its source's words (the API key's name, from `keyNames` when the
   * caller has them) and, for a payment request's link, the request (its page and status).
   */
  const rowHelpers = async (merchant: Merchant, items: Link[], keyNames?: Map<number, { name: string }>) => {
    const [names, requestRefs] = await Promise.all([
      keyNames ?? rt.apiKeys.refsByKeys(items.flatMap((l) => (l.apiKeyKey === null ? [] : [l.apiKeyKey]))),
      links.requestRefs(items.filter((l) => l.kind === 'request').map((l) => l.key)),
    ]);
    return { ...helpers(merchant), source: (link: Link) => sourceText(link, names), request: (link: Link) => requestRefs.get(link.key) ?? null };
  };

  // ---- List -------------------------------------------------------------------------------------

  /**
   * Smart links and payment requests in one list, by tab (`kind=smart|request|all`; smart links by
   * default) and filters (source — an API key by name —, status, created dates in the merchant's
   * time zone, name, tags). A filter the page cannot understand is named by its field (422) and the
   * list shows what it can without it.
   */
  router.get('/links', async (req, res) => {
    const merchant = merchantOf(res);
    const { query, problems } = readListQuery(req.query as Record<string, unknown>, merchant.locale);
    // The API keys that made any of the merchant's links: the source filter offers each by name.
    const usedKeys = await rt.apiKeys.refsByKeys(await links.apiKeysUsed(merchant.key));
    const keys = [...usedKeys].map(([key, ref]) => ({ key, ...ref })).sort((a, b) => a.name.localeCompare(b.name));
    let apiKeyKey: number | undefined;
    if (query.source.startsWith('key_')) {
      apiKeyKey = keys.find((k) => k.id === query.source)?.key;
      if (apiKeyKey === undefined) {
        problems.source = 'None of your links was made with that API key: choose a source from the list.';
        query.source = '';
      }
    }
    const [result, linkTags] = await Promise.all([links.search(merchant, toSearch(query, merchant.timezone, apiKeyKey)), tags.list(merchant.key, 'link')]);
    const filtered = isFiltered(query);
    const sources = sourceOptions(query.kind, keys);
    const data = {
      title: 'Links',
      query,
      result,
      linkTags,
      filtered,
      problems,
      problemCount: Object.keys(problems).length,
      // The first-run empty state only when the merchant has no link of either kind.
      anything: result.total > 0 || filtered || query.kind !== 'smart' || (await links.hasAny(merchant.key, ownScope(merchant.actor))),
      tabs: KINDS.map((k) => ({ ...k, href: listHref(query, { kind: k.value, status: '', page: 1 }), selected: k.value === query.kind })),
      statusGroups: statusGroups(query.kind),
      sources,
      applied: appliedFilters(query, { sources, locale: merchant.locale }),
      datePattern: dayPattern(merchant.locale),
      // A date the list could not use goes back into its box as typed, by its message.
      typed: { from: one(req.query.from).slice(0, 40), to: one(req.query.to).slice(0, 40) },
      listHref: (change: Parameters<typeof listHref>[1]) => listHref(query, change),
      pages: pageWindow(result.page, result.pages),
      back: listHref(query, { page: result.page }),
      h: await rowHelpers(merchant, result.items, usedKeys),
    };
    // An htmx request (the live search, the filters) gets the results only, and the tidy address of
    // this list for the address bar (not the form's every empty field); a navigation gets the page.
    if (wantsFragment(req)) res.set('HX-Push-Url', listHref(query));
    await render(req, res, wantsFragment(req) ? 'links/_results' : 'links/index', data, data.problemCount ? 422 : 200);
  });

  // ---- New --------------------------------------------------------------------------------------

  const sections = createSendSections(rt);
  const actionForms = createActionForms({ registries: rt.registries, actions: rt.actions, log: rt.log.child('actions'), renderView: (plugin, name, data) => rt.plugins.renderView(plugin, name, data) });

  /**
   * The after-payment actions section (slot link-form.after-payment): for a new link, with the
   * customer chosen under "Send to a customer"; for a link, with its customer (a deleted one counts as none).
   */
  const afterPaymentSection = async (merchant: Merchant, customer: Customer | null, state: ActionFormState, errors: Record<string, string>, editing: boolean) =>
    actionForms.section(toPluginMerchant(merchant), customer && !customer.deletedAt ? actionCustomer(customer) : null, state, errors, editing);
  const linkCustomer = async (link: Link) => (link.customerKey === null ? null : rt.customers.getByKey(link.customerKey));

  const formPage = async (
    req: express.Request,
    res: express.Response,
    opts: { type: LinkType; values: LinkFormValues; send?: SendFormValues; actions?: ActionFormState; errors?: Record<string, string>; link?: Link },
    status = 200,
  ) => {
    const merchant = merchantOf(res);
    const errors = opts.errors ?? {};
    const link = opts.link;
    // The first empty custom-field row (-1: all ten are filled). After "Add more fields" it takes the
    // focus, and a boosted post, which scrolls to the top when swapped, goes to it instead.
    const emptyRow = firstEmptyRow(opts.values.collect);
    const moreFields = req.method === 'POST' && req.body?.refresh === 'fields';
    if (moreFields && emptyRow >= 0 && req.get('HX-Request')) res.set('HX-Reswap', `innerHTML show:#f-cf_row_${emptyRow}:top`);
    const afterPayment = async () => {
      const customer = link ? await linkCustomer(link) : await sections.customerOf(merchant, (opts.send ?? newSendValues()).customer_id);
      const state = opts.actions ?? (link ? actionForms.saved(await rt.actions.forLink(link.key)) : actionForms.posted({}));
      return afterPaymentSection(merchant, customer, state, errors, !!link);
    };
    const [productList, linkTags, send, ap] = await Promise.all([
      // An items link's picker lists the active products (and, when editing, those it sells that are not active any more).
      opts.link && opts.type !== 'items' ? Promise.resolve([]) : products.active(merchant.key).then((list) => [...list, ...(opts.link?.items ?? []).map((i) => i.product).filter((p) => !list.some((a) => a.id === p.id))]),
      tags.list(merchant.key, 'link'),
      opts.link ? null : sections.send(merchant, opts.send ?? newSendValues(), errors, req.body?.refresh === 'send' ? String(req.body.send_for ?? '') : undefined),
      afterPayment(),
    ]);
    await render(
      req,
      res,
      opts.link ? 'links/edit' : 'links/new',
      {
        title: opts.link ? `Edit ${opts.link.name}` : opts.type === 'amount' ? 'New amount link' : opts.type === 'items' ? 'New items link' : 'New product link',
        type: opts.type,
        values: opts.values,
        errors,
        errorCount: Object.keys(errors).length,
        link: opts.link ?? null,
        products: productList,
        linkTags,
        send,
        afterPayment: ap,
        choiceLimit: CUSTOMER_CHOICES,
        currencies: currencyOptions(),
        pathPrefix: `${rt.config.baseUrl.replace(/^https?:\/\//, '')}/${merchant.handle}/`,
        // "Payment page look" (branding overrides) and the live preview beside the form.
        brandingValues: req.method === 'POST' ? postedLinkBrandingValues(req.body ?? {}, merchant.brandColor) : linkBrandingFormValues(link?.branding ?? null, merchant.brandColor),
        brandingChoices: linkBrandingChoices(merchant),
        previewQuery: link ? `link=${encodeURIComponent(link.id)}` : `type=${opts.type}`,
        // The form came back with what was posted (errors, "Add more fields"): the preview shows that at once, not the saved link or a blank one.
        previewPosted: req.method === 'POST',
        // "Add more fields": the first empty custom-field row takes the focus (and the page scrolls to it).
        focusRow: moreFields ? emptyRow : -1,
        canAddFields: emptyRow >= 0,
        h: helpers(merchant),
        formatMoney,
      },
      status,
    );
  };

  router.get('/links/new', async (req, res) => {
    const merchant = merchantOf(res);
    const type = req.query.type;
    if (!isType(type)) {
      const productList = await products.active(merchant.key);
      return render(req, res, 'links/choose', { title: 'New link', productCount: productList.length, example: formatMoney(3900, merchant.currency) });
    }
    await formPage(req, res, { type, values: newLinkValues(type, merchant.currency) });
  });

  /**
   * The send section again for the chosen customer (htmx, as the merchant picks a customer or
   * channels). A plain GET has no form to refresh: the new-link form is where it lives.
   */
  router.get('/links/send-options', async (req, res) => {
    if (!wantsFragment(req)) return res.redirect(303, '/app/links/new?type=amount');
    const merchant = merchantOf(res);
    const query = req.query as Record<string, unknown>;
    const send = await sections.send(merchant, postedSendValues(query), {}, String(query.send_for ?? ''));
    await render(req, res, 'links/_send', { send, errors: {}, choiceLimit: CUSTOMER_CHOICES });
  });

  /** The after-payment actions section again, for the ticked actions and the customer (htmx). */
  router.get('/links/after-payment', async (req, res) => {
    if (!wantsFragment(req)) return res.redirect(303, '/app/links');
    const merchant = merchantOf(res);
    const query = req.query as Record<string, unknown>;
    // The edit form has no customer select: its section carries the link's customer id itself.
    const customer = await sections.customerOf(merchant, postedSendValues(query).customer_id);
    const ap = await afterPaymentSection(merchant, customer, actionForms.posted(query), {}, query.editing === '1');
    await render(req, res, 'links/_after_payment', { ap });
  });

  router.post('/links', async (req, res) => {
    const merchant = merchantOf(res);
    const body = req.body as Record<string, unknown>;
    const type: LinkType = isType(body.type) ? body.type : 'amount';
    const sendValues = postedSendValues(body);
    const again = (errors: Record<string, string>, status: number) => formPage(req, res, { type, values: postedValues(body, type, merchant.currency), send: sendValues, actions: actionForms.posted(body), errors }, status);
    // Without JavaScript, "Update choices" posts the form to show the chosen customer's channels;
    // "Add more fields" posts it to show empty custom-field rows after the filled ones. Nothing is saved.
    if (body.refresh === 'send' || body.refresh === 'fields') return again({}, 200);
    const { sending } = rt;
    // An items link's typed amounts are in its products' currency (the first ticked product's; the service checks they agree).
    const firstItem = body.type === 'items' ? [body.item].flat()[0] : undefined;
    const itemsCurrency = typeof firstItem === 'string' && firstItem ? (await rt.products.get(merchant.key, firstItem).catch(() => null))?.currency : undefined;
    const { input, errors } = createInputErrors(body, itemsCurrency ?? merchant.currency);
    const { send, errors: sendErrors } = sendInput(sendValues, body.active === 'on' || body.active === '1' || body.active === 'true');
    errors.push(...sendErrors);
    try {
      let plan: AfterPaymentPlan | null = null;
      if (actionForms.submitted(body)) {
        await collecting(errors, async () => {
          plan = await actionForms.plan(toPluginMerchant(merchant), body);
        });
      }
      if (!input || errors.length) {
        // Report the send's and the actions' problems along with the link's, all at once; nothing is written.
        if (send) await collecting(errors, () => sending.prepare(merchant, send));
        errors.push(...rt.actions.customerProblems(plan, send ? 'one' : 'none'));
        throw new ValidationError(errors);
      }
      const { link, sent } = await sending.createLink(merchant, { ...input, ...(send ? { send } : {}) }, { afterPayment: plan });
      const by = send ? (send.channels as string[]).map((c) => rt.deliveries.channels.label(c)).join(' and ') : '';
      flash(req, 'success', sent ? `Link “${link.name}” created and sent by ${by}.` : `Link “${link.name}” created. Share ${links.urlFor(link, merchant)}.`);
      res.redirect(303, `/app/links/${link.id}`);
    } catch (err) {
      const overCap = overCapMessage(err);
      if (overCap) return again(type === 'product' ? { product_id: overCap } : { amount: overCap }, 403);
      const list = fieldErrorList(err);
      if (!list) throw err;
      await again(formFieldErrors(list, body), 422);
    }
  });

  /** "Ada (agent)", "API key “shop”" or "—": who made the link. */
  const createdByText = async (link: Link) => {
    const [users, keys] = await Promise.all([
      link.createdByUserKey === null ? new Map() : rt.merchants.userRefsByKeys([link.createdByUserKey]),
      link.apiKeyKey === null ? new Map() : rt.apiKeys.refsByKeys([link.apiKeyKey]),
    ]);
    return madeByText(link.createdByUserKey === null ? null : users.get(link.createdByUserKey), link.apiKeyKey === null ? null : keys.get(link.apiKeyKey));
  };

  // ---- One link ---------------------------------------------------------------------------------

  /** A tab's page of the link's activity, as rows (Reminders has none until links are sent to customers). */
  const activityOf = async (link: Link, q: ActivityQuery, rows: ReturnType<typeof activityRows>) => {
    const { analytics } = rt;
    if (q.tab === 'views') {
      const p = await analytics.viewsPage(link, q.page, ACTIVITY_PER_PAGE);
      return { ...p, rows: p.items.map(rows.view) };
    }
    if (q.tab === 'payments') {
      const p = await analytics.paymentsPage(link, q.page, ACTIVITY_PER_PAGE);
      return { ...p, rows: p.items.map(rows.payment) };
    }
    if (q.tab === 'reminders') return { page: 1, pages: 1, total: 0, rows: [] };
    const p = await analytics.activityPage(link, q.page, ACTIVITY_PER_PAGE);
    return { ...p, rows: p.items.map(rows.item) };
  };

  /**
   * The link page. Its tabs and pages (`?tab=views&page=3`) render the whole page on a plain GET and
   * just the activity panel for htmx (HX-Target link-activity). The live refresh (HX-Trigger
   * link-live) gets the metrics, limit card and chart, plus the panel only when it shows page 1.
   */
  router.get('/links/:id', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, String(req.params.id));
    const query = readActivityQuery(req.query as Record<string, unknown>);
    const live = wantsFragment(req) && req.get('HX-Trigger') === LIVE_TRIGGER_ID;
    const panelOnly = !live && wantsFragment(req) && req.get('HX-Target') === ACTIVITY_ID;
    const [activity, days, sending, createdBy, subscribers] = await Promise.all([
      live && query.page > 1 ? null : activityOf(link, query, activityRows(rt.clock.now(), merchant.timezone)),
      panelOnly ? null : rt.analytics.daily(link, merchant.timezone),
      // Any other htmx request (a target this page does not know) gets the whole page's content.
      sendingParts.forLinkPage(req, merchant, link, !live && !panelOnly),
      live || panelOnly ? null : createdByText(link),
      // Plans are sold on items links: who subscribed through this one.
      live || panelOnly || link.type !== 'items' ? null : rt.subscriptions.countsForLink(merchant.key, link.key),
    ]);
    const data = {
      title: link.name,
      link,
      qr: qrPaths(link.id).dashboard,
      metrics: linkMetrics(link, { remaining: remaining(link), conversionRate: conversionRate(link) }),
      limit: limitCard(link, remaining(link)),
      chart: days && dailyChart(days, link.currency),
      activity: activity && activityPanel(link.id, query.tab, activity),
      sending,
      createdBy,
      subscriptions: subscribers && (link.items.some((i) => i.product.recurring) || Object.values(subscribers).some((n) => n > 0)) ? subscribers : null,
      h: helpers(merchant),
    };
    res.vary('HX-Target').vary('HX-Trigger');
    // A page past the last shows the last: the address bar says so too.
    if (panelOnly && activity && activity.page !== query.page) res.set('HX-Push-Url', activityHref(link.id, { tab: query.tab, page: activity.page }));
    await render(req, res, live ? 'analytics/_refresh' : panelOnly ? 'analytics/_activity' : 'links/show', data);
  });

  router.get('/links/:id/edit', async (req, res) => {
    const link = await links.get(merchantOf(res), String(req.params.id));
    await formPage(req, res, { type: link.type, values: linkValues(link), link });
  });

  router.post('/links/:id', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, String(req.params.id));
    const body = req.body as Record<string, unknown>;
    const { actions } = rt;
    // The after-payment actions were on the form: save them too, checked before anything is written.
    const withActions = actionForms.submitted(body);
    const posted = () => ({ ...postedValues(body, link.type, link.currency), product_id: link.productId ?? '' });
    // "Add more fields": the form again with empty custom-field rows after the filled ones; nothing is saved.
    if (body.refresh === 'fields') return formPage(req, res, { type: link.type, values: posted(), actions: withActions ? actionForms.posted(body) : undefined, link });
    try {
      const errors: FieldError[] = [];
      let input: Record<string, unknown> | null = null;
      let plan: AfterPaymentPlan | null = null;
      await collecting(errors, async () => {
        input = updateInput(body, link);
      });
      if (withActions) {
        await collecting(errors, async () => {
          plan = await actionForms.plan(toPluginMerchant(merchant), body);
        });
        errors.push(...actions.customerProblems(plan, link.customerKey === null ? 'none' : 'one', true));
      }
      if (errors.length || !input) throw new ValidationError(errors);
      const updated = await links.update(merchant, link.id, input);
      if (plan) await actions.apply(link, plan);
      flash(req, 'success', `Link “${updated.name}” saved.`);
      res.redirect(303, `/app/links/${link.id}`);
    } catch (err) {
      const overCap = overCapMessage(err);
      const list = overCap ? [{ field: 'amount', code: 'amount_over_cap', message: overCap }] : fieldErrorList(err);
      if (!list) throw err;
      await formPage(req, res, { type: link.type, values: posted(), actions: withActions ? actionForms.posted(body) : undefined, errors: formFieldErrors(list, body), link }, overCap ? 403 : 422);
    }
  });

  router.post('/links/:id/duplicate', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, String(req.params.id));
    try {
      const copy = await links.duplicate(merchant, link.id, { within: (trx, made) => rt.actions.copy(trx, link.key, made.key) });
      flash(req, 'success', `Copy created at ${links.urlFor(copy, merchant)}. Change what you need and save.`);
      res.redirect(303, `/app/links/${copy.id}/edit`);
    } catch (err) {
      // E.g. its product has been deactivated since: say so on the link's page.
      const errors = formErrors(err);
      if (!errors) throw err;
      flash(req, 'error', `No copy was made: ${Object.values(errors)[0]}`);
      res.redirect(303, `/app/links/${link.id}`);
    }
  });

  /**
   * Activate / deactivate. From a list row (htmx) the answer is the updated row; from a plain form,
   * a redirect back to where the merchant was (a dashboard path only).
   */
  const setActive = (active: boolean) => async (req: express.Request, res: express.Response) => {
    const merchant = merchantOf(res);
    const id = String(req.params.id);
    let link = await links.get(merchant, id);
    let failed: string | null = null;
    try {
      link = await links.update(merchant, id, { active });
      flash(req, 'success', `Link “${link.name}” ${active ? 'activated' : 'deactivated'}.`);
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      failed = errors.active ?? Object.values(errors)[0];
      flash(req, 'error', failed);
    }
    const body = req.body as Record<string, unknown>;
    if (wantsFragment(req) && req.get('HX-Target') === `link-row-${link.id}`) {
      return render(req, res, 'links/_row', { link, h: await rowHelpers(merchant, [link]), back: safeNext(body.back), oobFlash: true }, failed ? 422 : 200);
    }
    res.redirect(303, body.back === undefined ? `/app/links/${link.id}` : safeNext(body.back));
  };
  router.post('/links/:id/activate', setActive(true));
  router.post('/links/:id/deactivate', setActive(false));

  router.get('/links/:id/delete', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, String(req.params.id));
    await render(req, res, 'links/delete', { title: `Delete ${link.name}`, link, h: helpers(merchant) });
  });

  router.post('/links/:id/delete', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, String(req.params.id));
    await links.remove(merchant, link.id);
    flash(req, 'success', `Link “${link.name}” deleted. Its address no longer works; its payments stay in your reports.`);
    res.redirect(303, '/app/links');
  });

  return router;
}
