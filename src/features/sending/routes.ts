/**
 * Sending from the link page (mounted under /app, before the links pages): the Send panel (pick
 * customers or a customer tag, channels, optional reminders), the delivery card with Resend, the
 * reminders card with Stop, and the Reminders tab of the link's activity.
 *
 * GET /app/links/:id is the links feature's page; it asks `linkPageSending(rt).forLinkPage` for what
 * it shows of sending. The cards re-read themselves live from /app/links/:id/cards.
 */
import express from 'express';
import { ownScope } from '../../core/access.ts';
import type { AppDeps } from '../../web/deps.ts';
import { flash, wantsFragment, type Renderer } from '../../core/http.ts';
import { NotFoundError, RateLimitedError, ValidationError } from '../../core/errors.ts';
import { safeNext } from '../accounts/index.ts';
import type { Merchant } from '../merchants/index.ts';
import type { Link } from '../links/index.ts';
import type { Customer } from '../customers/index.ts';
import { formatPhone, one } from '../../web/view.ts';
import { readActivityQuery } from '../analytics/index.ts';
import {
  CARD_DELIVERIES,
  DELIVERIES_PER_PAGE,
  PICKER_SIZE,
  REMINDERS_MAX,
  channelChoices,
  deliveryRows,
  emptySendValues,
  frequencyOptions,
  planRows,
  readSendValues,
  remindersTab,
  sendFormErrors,
  sendInput,
  sentNotice,
  type SendFormValues,
} from './view.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'clock' | 'customers' | 'deliveries' | 'links' | 'reminders' | 'sending' | 'tags'>;

/** The ids the link page's sending parts carry: htmx names them in HX-Target. */
export const SEND_ID = 'link-send';
export const DELIVERIES_ID = 'link-deliveries';
export const REMINDERS_ID = 'link-reminders';
const PICKER_ID = 'send-customers';
const CHANNELS_ID = 'send-channels';

interface Notice {
  type: 'success' | 'error' | 'info';
  text: string;
  help?: { href: string; text: string };
}

/**
 * What the link page shows of sending: the Send panel, the messages card, the reminders card and
 * the Reminders tab. The links feature's page asks for them (`forLinkPage`); this feature's routes
 * re-render them after a change.
 */
export function linkPageSending(rt: Pick<AppDeps, 'clock' | 'customers' | 'deliveries' | 'reminders' | 'tags'>) {
  const { customers, tags, deliveries, reminders } = rt;
  const { channels } = deliveries;

  /** The customers the form offers: the chosen ones first (checked), then the search's matches. */
  async function picker(merchant: Merchant, v: SendFormValues) {
    const [chosen, found] = await Promise.all([
      customers.getMany(merchant.key, v.customer_ids, ownScope(merchant.actor)),
      customers.list(merchant.key, { ...(v.q ? { q: v.q } : {}), limit: PICKER_SIZE }, ownScope(merchant.actor)),
    ]);
    // The chosen in the order they were chosen (getMany answers in its own order).
    const selected = v.customer_ids.map((id) => chosen.find((c) => c.id === id)).filter((c): c is Customer => !!c);
    const offered = found.data.filter((c) => !v.customer_ids.includes(c.id));
    const option = (c: Customer, checked: boolean) => ({ id: c.id, name: c.name, detail: [c.email, c.phone && formatPhone(c.phone), ...Object.values(c.addresses)].filter(Boolean).join(' · '), checked });
    return {
      q: v.q,
      options: [...selected.map((c) => option(c, true)), ...offered.map((c) => option(c, false))],
      more: found.has_more,
      // No customer at all: the panel says how to add some instead of offering an empty list.
      none: !v.q && !selected.length && !found.data.length,
      single: selected.length === 1 && !v.customer_tag ? selected[0] : null,
    };
  }

  async function sendPanel(merchant: Merchant, link: Link, v: SendFormValues, errors: Record<string, string> = {}, notice: Notice | null = null) {
    const [people, customerTags] = await Promise.all([picker(merchant, v), tags.list(merchant.key, 'customer')]);
    return {
      link,
      values: v,
      errors,
      errorCount: Object.keys(errors).length,
      notice,
      picker: people,
      customerTags,
      channels: channelChoices(channels, people.single, v.channels),
      several: !people.single,
      frequencies: frequencyOptions(),
      remindersMax: REMINDERS_MAX,
      ids: { send: SEND_ID, picker: PICKER_ID, channels: CHANNELS_ID },
    };
  }

  async function deliveryCard(merchant: Merchant, link: Link, notice: Notice | null = null) {
    const recent = await deliveries.recentForLink(link.key, CARD_DELIVERIES + 1);
    return { link, rows: deliveryRows(recent.slice(0, CARD_DELIVERIES), rt.clock.now(), merchant.timezone, channels), more: recent.length > CARD_DELIVERIES, notice };
  }

  async function reminderCard(merchant: Merchant, link: Link, notice: Notice | null = null) {
    const plans = await reminders.forLink(link.key);
    return { link, plans: planRows(plans, rt.clock.now(), merchant.timezone, channels), notice };
  }

  async function reminderTab(merchant: Merchant, link: Link) {
    const plans = await reminders.forLink(link.key);
    const sent = await deliveries.forPlans(plans.map((p) => p.key));
    return remindersTab(plans, sent, rt.clock.now(), merchant.timezone, channels);
  }

  return {
    sendPanel,
    deliveryCard,
    reminderCard,
    reminderTab,
    /**
     * The sending parts of the link page: all of them when `whole` (the page, or its content for an
     * htmx request that targets no part of it), else only the Reminders tab's data for its htmx panel.
     */
    async forLinkPage(req: express.Request, merchant: Merchant, link: Link, whole: boolean) {
      const tab = readActivityQuery(req.query as Record<string, unknown>).tab;
      const page = whole;
      const [send, card, plans, tabData] = await Promise.all([
        page && link.active ? sendPanel(merchant, link, emptySendValues()) : null,
        page ? deliveryCard(merchant, link) : null,
        page ? reminderCard(merchant, link) : null,
        tab === 'reminders' ? reminderTab(merchant, link) : null,
      ]);
      return { send, deliveries: card, reminders: plans, remindersTab: tabData };
    },
  };
}

export function sendingRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { links, customers, sending, deliveries, reminders } = rt;

  const merchantOf = (res: express.Response): Merchant => res.locals.merchant;
  const target = (req: express.Request) => (wantsFragment(req) ? (req.get('HX-Target') ?? '') : '');

  const { sendPanel, deliveryCard, reminderCard } = linkPageSending(rt);

  /** The link, or null when it is not this merchant's (the links router answers that with its 404). */
  const linkOrNull = (merchant: Merchant, id: string) => links.get(merchant, id).catch((err) => (err instanceof NotFoundError ? null : Promise.reject(err)));

  // ---- The cards, re-read live ------------------------------------------------------------

  /** The messages card re-reads itself when the live stream says a message went out; the reminders card comes along out of band. */
  router.get('/links/:id/cards', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, String(req.params.id));
    const [card, plans] = await Promise.all([deliveryCard(merchant, link), reminderCard(merchant, link)]);
    await render(req, res, 'sending/_cards', { deliveries: card, reminders: plans });
  });

  // ---- Send ---------------------------------------------------------------------------------

  /**
   * The Send form on its own page (without JavaScript the customer search lands here), and its
   * parts for htmx: the customers matching the search (HX-Target send-customers) and the channel
   * checkboxes for the customers chosen (HX-Target send-channels).
   */
  router.get('/links/:id/send', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, String(req.params.id));
    const v = readSendValues(req.query as Record<string, unknown>, !wantsFragment(req));
    const panel = await sendPanel(merchant, link, v);
    res.vary('HX-Target');
    const hxTarget = target(req);
    if (hxTarget === PICKER_ID) return render(req, res, 'sending/_picker', { send: panel });
    if (hxTarget === CHANNELS_ID) return render(req, res, 'sending/_channels', { send: panel });
    if (!link.active) flash(req, 'error', 'This link is not active: activate it before sending it.');
    await render(req, res, 'sending/send', { title: `Send ${link.name}`, link, send: panel });
  });

  router.post('/links/:id/send', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, String(req.params.id));
    const v = readSendValues(req.body as Record<string, unknown>);
    const inPanel = target(req) === SEND_ID;
    try {
      const single = v.customer_ids.length === 1 && !v.customer_tag ? await customers.get(merchant.key, v.customer_ids[0], ownScope(merchant.actor)).catch(() => null) : null;
      const result = await sending.send(merchant, link, sendInput(v));
      const notice = sentNotice(result, single?.name ?? null, v.channels.flatMap((id) => rt.deliveries.channels.get(id) ?? []));
      if (!inPanel) {
        flash(req, notice.type, notice.text, notice.help);
        return res.redirect(303, `/app/links/${link.id}`);
      }
      // A fresh form (the same channels and reminders, no one chosen), and the cards with the new messages.
      const fresh = { ...emptySendValues(), channels: v.channels, reminder_frequency: v.reminder_frequency, reminder_max: v.reminder_max };
      const [panel, card, plans] = await Promise.all([sendPanel(merchant, link, fresh, {}, notice), deliveryCard(merchant, link), reminderCard(merchant, link)]);
      await render(req, res, 'sending/_sent', { send: panel, deliveries: card, reminders: plans });
    } catch (err) {
      const errors = sendFormErrors(err);
      if (!errors) throw err;
      const panel = await sendPanel(merchant, link, v, errors);
      await render(req, res, inPanel ? 'sending/_send' : 'sending/send', { title: `Send ${link.name}`, link, send: panel }, 422);
    }
  });

  // ---- Deliveries ---------------------------------------------------------------------------

  /** All of a link's messages, newest first, page by page (`?before=<delivery id>`). */
  router.get('/links/:id/deliveries', async (req, res) => {
    const merchant = merchantOf(res);
    const link = await links.get(merchant, String(req.params.id));
    const before = one(req.query.before).slice(0, 64) || undefined;
    let page;
    try {
      page = await deliveries.listForLink(link.key, { limit: DELIVERIES_PER_PAGE, starting_after: before });
    } catch (err) {
      // A cursor from another link or a mistyped address: start from the newest.
      if (err instanceof ValidationError) return res.redirect(303, `/app/links/${link.id}/deliveries`);
      throw err;
    }
    const rows = deliveryRows(page.data, rt.clock.now(), merchant.timezone, deliveries.channels);
    await render(req, res, 'sending/deliveries', {
      title: `Messages · ${link.name}`,
      link,
      rows,
      first: !before,
      next: page.has_more ? `/app/links/${link.id}/deliveries?before=${encodeURIComponent(page.data[page.data.length - 1].id)}` : null,
      back: before ? `/app/links/${link.id}/deliveries?before=${encodeURIComponent(before)}` : `/app/links/${link.id}/deliveries`,
    });
  });

  /** Sends a message again (a new delivery, with its own message id). */
  router.post('/deliveries/:id/resend', async (req, res) => {
    const merchant = merchantOf(res);
    const d = await deliveries.get(merchant.key, String(req.params.id));
    // Someone who sees only their own records resends only the messages of their own links.
    if (ownScope(merchant.actor)) {
      if (d.linkId === null) throw new NotFoundError('No such message.');
      await links.get(merchant, d.linkId);
    }
    const to = deliveries.channels.get(d.channel)?.addressKind === 'phone' ? formatPhone(d.to) : d.to;
    const who = d.customerName ? `${d.customerName} (${to})` : to;
    let notice: Notice;
    let status = 200;
    try {
      await deliveries.resend(merchant.key, d.id);
      notice = { type: 'success', text: `Sending again to ${who}.` };
    } catch (err) {
      if (err instanceof RateLimitedError) {
        // Resent too often: the same message as the API's 429, on the card or as a flash.
        notice = { type: 'error', text: err.userMessage };
        status = 429;
        res.setHeader('Retry-After', err.options.headers!['Retry-After']);
      } else {
        if (!(err instanceof ValidationError)) throw err;
        notice = { type: 'error', text: err.errors[0]?.message ?? err.userMessage };
        status = 422;
      }
    }
    if (target(req) === DELIVERIES_ID && d.linkId !== null) {
      const link = await links.get(merchant, d.linkId);
      return render(req, res, 'sending/_deliveries', { deliveries: await deliveryCard(merchant, link, notice) }, status);
    }
    flash(req, notice.type, notice.text);
    const back = (req.body as Record<string, unknown>).back;
    res.redirect(303, back === undefined ? (d.linkId !== null ? `/app/links/${d.linkId}` : d.customerId !== null ? `/app/customers/${d.customerId}` : '/app/payments') : safeNext(back));
  });

  // ---- Reminder plans -----------------------------------------------------------------------

  /** Stops a customer's reminders; the form names the link whose page it came from. */
  router.post('/reminder_plans/:id/stop', async (req, res) => {
    const merchant = merchantOf(res);
    const planId = String(req.params.id);
    await reminders.stop(merchant.key, planId);
    const link = await linkOrNull(merchant, one((req.body as Record<string, unknown>).link));
    const plan = link && (await reminders.forLink(link.key)).find((p) => p.id === planId);
    const notice: Notice = { type: 'success', text: plan ? `Reminders to ${plan.customerName} stopped.` : 'Reminders stopped.' };
    if (link && target(req) === REMINDERS_ID) return render(req, res, 'sending/_reminders', { reminders: await reminderCard(merchant, link, notice) });
    flash(req, notice.type, notice.text);
    res.redirect(303, link ? `/app/links/${link.id}` : '/app/links');
  });

  return router;
}
