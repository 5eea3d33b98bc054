import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import type { Renderer } from '../../core/http.ts';
import { formatMoney } from '../../core/money.ts';
import { addDays, dayKeyIn, startOfDay } from '../../core/time.ts';
import type { Merchant } from '../merchants/index.ts';
import { describeEvents, type ActivityDeps } from './activity.ts';
import { can, ownScope } from '../../core/access.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'apiKeys' | 'clock' | 'config' | 'customers' | 'deliveries' | 'events' | 'links' | 'payments' | 'requests'>;

/** Sections a later feature fills in; until then each explains what it will hold and what to do first. */
const SECTIONS: Record<string, { title: string; lead: string; next: string }> = {};

/** The home page's money windows: days back from today (today counts as one), in the merchant's time zone. */
const WINDOWS = [
  { days: 1, label: 'Today' },
  { days: 7, label: 'Last 7 days' },
  { days: 30, label: 'Last 30 days' },
] as const;

export function dashboardRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const names: ActivityDeps = { customers: rt.customers, links: rt.links, payments: rt.payments, channelLabel: (id) => rt.deliveries.channels.label(id) };

  /** Money received per currency in each window, and messages that failed in the last 30 days. */
  async function numbers(merchant: Merchant) {
    const today = dayKeyIn(rt.clock.now(), merchant.timezone);
    const since = WINDOWS.map((w) => startOfDay(addDays(today, 1 - w.days), merchant.timezone)!);
    const [totals, soldOut, failed] = await Promise.all([
      rt.payments.paidTotals(merchant.key, since),
      rt.links.nearlySoldOut(merchant.key, 5),
      rt.deliveries.failedSince(merchant.key, since[2], 5),
    ]);
    // The merchant's own currency first, then the others alphabetically.
    const currencies = [...new Set([merchant.currency, ...totals.map((t) => t.currency)])].sort((a, b) => (a === merchant.currency ? -1 : b === merchant.currency ? 1 : a.localeCompare(b)));
    const windows = WINDOWS.map((w, i) => ({
      label: w.label,
      rows: currencies
        .map((currency) => {
          const t = totals.find((x) => x.currency === currency)?.windows[i] ?? { amount: 0, count: 0 };
          return { currency, amount: formatMoney(t.amount, currency), count: t.count };
        })
        // Other currencies only where they had payments; the merchant's own always (€0.00).
        .filter((r) => r.currency === merchant.currency || totals.find((x) => x.currency === r.currency)?.windows[i].count),
    }));
    return { windows, soldOut, failed: { count: failed.count, recent: failed.recent } };
  }

  router.get('/', async (req, res) => {
    const merchant: Merchant = res.locals.merchant;
    // A role without the account's figures (an agent) gets their own work instead: what they made lately.
    if (!can(merchant.actor?.role ?? 'owner', 'reports.read')) {
      const only = ownScope(merchant.actor);
      const [recentLinks, recentRequests] = await Promise.all([
        rt.links.search(merchant, { kind: 'smart', perPage: 5 }),
        rt.requests.list(merchant.key, { limit: 5 }, only),
      ]);
      const who = await rt.customers.summariesByKeys(recentRequests.data.flatMap((r) => (r.link.customerKey === null ? [] : [r.link.customerKey])));
      return render(req, res, 'dashboard/mine', {
        title: 'Dashboard',
        publicUrl: `${rt.config.baseUrl}/${merchant.handle}`,
        cap: merchant.actor?.amountCap == null ? null : formatMoney(merchant.actor.amountCap, merchant.currency),
        links: recentLinks.items,
        requests: recentRequests.data.map((r) => ({
          id: r.id,
          title: r.reference ?? r.link.description ?? r.link.name,
          amount: formatMoney(r.link.amount, r.link.currency),
          status: r.status,
          customer: r.link.customerKey === null ? null : who.get(r.link.customerKey)?.name ?? null,
        })),
        money: formatMoney,
      });
    }
    const [keys, links, events, figures] = await Promise.all([
      rt.apiKeys.list(merchant.key),
      rt.links.search(merchant, { perPage: 1 }),
      rt.events.listForMerchant(merchant.key, 8),
      numbers(merchant),
    ]);
    const outbox = ((res.locals.nav ?? []) as { label: string; href: string }[]).find((n) => n.label === 'Outbox') ?? null;
    await render(req, res, 'dashboard/home', {
      title: 'Dashboard',
      publicUrl: `${rt.config.baseUrl}/${merchant.handle}`,
      steps: [
        { done: true, label: 'Create your account', href: null },
        { done: merchant.updatedAt.getTime() > merchant.createdAt.getTime(), label: 'Set your brand colour, currency and time zone', href: '/app/settings' },
        { done: links.total > 0, label: 'Create your first payment link', href: '/app/links/new' },
        { done: keys.some((k) => !k.revokedAt), label: 'Create an API key (optional, for integrations)', href: '/app/settings#api-keys' },
      ],
      ...figures,
      failedMessages: figures.failed.recent.map((d) => ({
        text: `${d.kind === 'receipt' ? 'Receipt' : d.kind === 'reminder' ? 'Reminder' : d.kind === 'expiry' ? 'Expiry reminder' : 'Link'} to ${d.customerName ?? d.to} by ${rt.deliveries.channels.label(d.channel)}`,
        error: d.error,
        href: d.customerId ? `/app/customers/${d.customerId}` : d.linkId ? `/app/links/${d.linkId}` : null,
        at: d.createdAt,
      })),
      outboxHref: outbox?.href ?? null,
      events: await describeEvents(names, merchant.key, events),
    });
  });

  for (const [slug, section] of Object.entries(SECTIONS)) {
    router.get(`/${slug}`, (req, res) => render(req, res, 'dashboard/section', { title: section.title, section }));
  }

  router.get('/activity', async (req, res) => {
    const merchant: Merchant = res.locals.merchant;
    const events = await rt.events.listForMerchant(merchant.key, 100);
    await render(req, res, 'dashboard/activity', { title: 'Activity', events: await describeEvents(names, merchant.key, events) });
  });

  return router;
}
