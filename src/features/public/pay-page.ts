/**
 * Pay pages (DESIGN.md "Public URLs"): `/:handle` (the customer enters an amount), `/:handle/12.50`
 * (a fixed amount) and `/:handle/:path` (a smart link). GET renders the page; POST to the same URL
 * is the checkout. No session, no Redis, no CSRF (there is no ambient authority to protect): this is
 * the hot path, so a GET costs the merchant by handle and the link by path, nothing else.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Request, type Response } from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { sendHtml, type Renderer } from '../../core/http.ts';
import { MIN_DYNAMIC_BYTES } from '../../core/compress.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { formatMoney, toDecimalString } from '../../core/money.ts';
import { dateTimeIn } from '../../core/time.ts';
import { TtlCache } from '../../core/changes.ts';
import { consumeEach, type Limiter } from '../../core/rate-limit.ts';
import { RESERVED_HANDLES, type Merchant } from '../merchants/index.ts';
import { remaining } from '../links/index.ts';
import { NoSlotError, minutesUntil, type PayableLink } from '../checkout/index.ts';
import { lineItemsView, type LineItem } from '../../core/line-items.ts';
import { ITEMS_MAX, defaultChoice, priceOrder, quantityField, sections, subscriptionTerms, type CustomAmount, type LinkItem, type OrderChoice, type PricedOrder } from '../links/index.ts';
import { applyStep, chosenAmount, customAmountView, itemsView, orderChoiceFrom } from './order-view.ts';
import { isAmountSegment, isHandleShaped, isPathShaped, maxOpenAmount, parseAmountSegment, parseCheckoutForm, type CheckoutForm } from './schemas.ts';
import { currencySymbol, merchantView } from './view.ts';
import { couponStep, postedCoupon, type AppliedCoupon } from './coupon.ts';
import { collectedValues, parseCollected, postedCollectValues } from './collect.ts';
import { buttonText, parseLinkBranding, payBranding } from '../branding/index.ts';
import { limitKey } from '../../core/ip.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'changes' | 'checkout' | 'checkoutLimiter' | 'clock' | 'config' | 'coupons' | 'customers' | 'log' | 'merchants' | 'payments' | 'providers' | 'requests' | 'tokens' | 'views'>;

/** How a pay-page URL finds its merchant and link: straight from the database, or through a cache. */
export interface PayLookups {
  merchant(handle: string): Promise<Merchant | null>;
  link(merchantKey: number, path: string): Promise<PayableLink | null>;
  /** How the merchant's customers can pay: the choices, and the origins the pay form may send them to. */
  methods(merchantKey: number): Promise<PayMethods>;
}

/** The merchant's usable providers as a pay page offers them. */
export interface PayMethods {
  options: { id: string; label: string; /** The provider bills subscriptions (a recurring plan can be paid with it). */ subscriptions?: boolean }[];
  /** Origins (other than ours) the providers send customers to: the page's CSP `form-action` gets exactly these. */
  formOrigins: string[];
}

/** `https://x.example` for each http(s) URL or origin a provider declared; anything else is dropped. */
function originsOf(declared: unknown, own: string): string[] {
  if (!Array.isArray(declared)) return [];
  const out = new Set<string>();
  for (const d of declared) {
    try {
      const u = new URL(String(d));
      if ((u.protocol === 'https:' || u.protocol === 'http:') && u.origin !== own) out.add(u.origin);
    } catch {
      // not a URL: ignored
    }
  }
  return [...out];
}

export function databaseLookups(rt: Deps): PayLookups {
  const own = new URL(rt.config.baseUrl).origin;
  return {
    merchant: (handle) => rt.merchants.getByHandle(handle),
    link: (merchantKey, path) => rt.checkout.findPayableLink(merchantKey, path),
    async methods(merchantKey) {
      const usable = await rt.providers.usable(merchantKey);
      const formOrigins = new Set<string>();
      for (const { provider, settings } of usable) {
        try {
          for (const o of originsOf(provider.checkoutOrigins?.(settings) ?? [], own)) formOrigins.add(o);
        } catch (err) {
          rt.log.error('a provider failed to list its checkout origins', { provider: provider.id, error: err });
        }
      }
      return { options: usable.map(({ provider }) => ({ id: provider.id, label: provider.methodLabel ?? provider.name, subscriptions: provider.subscriptions === true })), formOrigins: [...formOrigins] };
    },
  };
}

/**
 * The pay page GET is the hot path: its two lookups are cached in-process and the cache is dropped
 * on every change (rt.changes: after any evented commit here, and via Redis from other processes).
 * The TTL only bounds how stale a page may look if a change signal is lost; a checkout POST always
 * reads the database, and the payment-limit claim is atomic there.
 */
export function cachedLookups(rt: Deps, ttlMs = 5_000): PayLookups {
  const fresh = databaseLookups(rt);
  const merchants = new TtlCache<Merchant | null>(ttlMs);
  const links = new TtlCache<PayableLink | null>(ttlMs);
  const methods = new TtlCache<PayMethods>(ttlMs);
  rt.changes.subscribe(() => {
    merchants.clear();
    links.clear();
    methods.clear();
  });
  return {
    async merchant(handle) {
      let m = merchants.get(handle);
      if (m === undefined) merchants.set(handle, (m = await fresh.merchant(handle)));
      return m;
    },
    async link(merchantKey, path) {
      const key = `${merchantKey}/${path}`;
      let l = links.get(key);
      if (l === undefined) links.set(key, (l = await fresh.link(merchantKey, path)));
      return l;
    },
    async methods(merchantKey) {
      const key = String(merchantKey);
      let m = methods.get(key);
      if (m === undefined) methods.set(key, (m = await fresh.methods(merchantKey)));
      return m;
    },
  };
}

/** What a pay-page URL resolves to. */
export type PayTarget =
  | {
      kind: 'page';
      merchant: Merchant;
      link: PayableLink | null;
      amount: number | null;
      currency: string;
      action: string;
      lines?: readonly LineItem[];
      /** An items link's lines on sale (its active products); the amount is the customer's order. */
      items?: readonly LinkItem[];
      /** The customer chooses the amount within these bounds. */
      custom?: CustomAmount;
    }
  | { kind: 'limit_reached'; merchant: Merchant; link: PayableLink }
  /** Every slot left is held by checkouts under way (immediate capture): one may free up later. */
  | { kind: 'all_held'; merchant: Merchant; link: PayableLink }
  /** `elsewhere`: the answer is another page (a paid request's receipt), so a POST is sent there as a GET (303). */
  | { kind: 'redirect'; location: string; elsewhere?: boolean }
  /** A payment request past its expiry: 410, naming the merchant and when it expired. */
  | { kind: 'request_expired'; merchant: Merchant; name: string; expiredAt: Date; refreshAction: string | null }
  /** Too many checkout attempts (from this address, on this request, or declines on it): 429 until `retryMs` passes. */
  | { kind: 'too_many'; merchant: Merchant; name: string | null; retryMs: number }
  | { kind: 'not_found' };

const NOT_FOUND: PayTarget = { kind: 'not_found' };

/** The query string of a request (`?utm_source=…`, or ''), to carry over a canonical redirect. */
const search = (url: string) => {
  const i = url.indexOf('?');
  return i < 0 ? '' : url.slice(i);
};

/**
 * Resolves `/:handle[/:segment]` (`query`: the URL's query string with its `?`, or ''). Case is fixed first (301 to lowercase, no database), then the
 * merchant and the link are read. Unknown, inactive and deleted links are all `not_found`, so their
 * pages cannot be told apart; a link closed by its payment limit is `limit_reached`.
 */
export async function resolvePayTarget(lookups: PayLookups, query: string, rawHandle: string, segment: string | null): Promise<PayTarget> {
  const handle = rawHandle.toLowerCase();
  if (!isHandleShaped(handle)) return NOT_FOUND;
  const amountUrl = segment !== null && isAmountSegment(segment);
  const path = segment === null || amountUrl ? null : segment.toLowerCase();
  if (path !== null && !isPathShaped(path)) return NOT_FOUND;
  if (handle !== rawHandle || (path !== null && path !== segment)) {
    return { kind: 'redirect', location: `/${handle}${segment === null ? '' : `/${path ?? segment}`}${query}` };
  }

  const merchant = await lookups.merchant(handle);
  if (!merchant) return NOT_FOUND;

  if (segment === null) {
    return { kind: 'page', merchant, link: null, amount: null, currency: merchant.currency, action: `/${handle}` };
  }
  if (amountUrl) {
    const parsed = parseAmountSegment(segment, merchant.currency);
    if (!parsed) return NOT_FOUND;
    if (!parsed.isCanonical) return { kind: 'redirect', location: `/${handle}/${parsed.canonical}${query}` };
    return { kind: 'page', merchant, link: null, amount: parsed.minor, currency: merchant.currency, action: `/${handle}/${segment}` };
  }

  const link = await lookups.link(merchant.key, path!);
  if (!link) return NOT_FOUND;
  return linkTarget(merchant, link, `/${handle}/${path}`);
}

/** What a found link's page shows: the page, "limit reached", or not found (inactive, expired, nothing to sell). */
export function linkTarget(merchant: Merchant, link: PayableLink, action: string, now = Date.now()): PayTarget {
  if (link.expiresAt && link.expiresAt.getTime() <= now) return NOT_FOUND;
  const full = link.paymentLimit !== null && link.paidCount >= link.paymentLimit;
  if (link.inactiveReason === 'limit_reached' || (link.active && full)) return { kind: 'limit_reached', merchant, link };
  if (!link.active) return NOT_FOUND;
  if (link.paymentLimit !== null && link.paidCount + link.heldCount >= link.paymentLimit) return { kind: 'all_held', merchant, link };
  if (link.type === 'product') {
    const product = link.product;
    // A product that was deactivated or deleted since: nothing to sell, like an inactive link.
    if (!product || !product.active) return NOT_FOUND;
    return { kind: 'page', merchant, link, amount: product.price, currency: product.currency, action };
  }
  if (link.type === 'items') {
    // A product deactivated or deleted since is not on sale; with none left there is nothing to sell.
    const items = link.items.filter((i) => i.product.active);
    if (!items.length) return NOT_FOUND;
    return { kind: 'page', merchant, link, amount: null, currency: link.currency, action, items, ...(link.customAmount ? { custom: link.customAmount } : {}) };
  }
  if (link.customAmount) return { kind: 'page', merchant, link, amount: null, currency: link.currency, action, custom: link.customAmount };
  if (link.amount === null) return NOT_FOUND;
  return { kind: 'page', merchant, link, amount: link.amount, currency: link.currency, action };
}

type Page = Extract<PayTarget, { kind: 'page' }>;

/** "€1,000,000.00": the open-amount hint (formatMoney memoises it). */
function maxOpenLabel(currency: string): string {
  return formatMoney(maxOpenAmount(currency), currency);
}

/** What a pay form carries back when it is shown again: what was typed, the messages, the order. */
interface PageForm {
  values?: Record<string, string>;
  errors?: Record<string, string>;
  recipient?: string | null;
  /** An items link's order as posted (quantities, plan); absent: the defaults. */
  order?: OrderChoice;
  /** Said above the form (the total changed since the page was shown). */
  notice?: string;
  /** A coupon applied to the total (views/pay/_coupon.eta). */
  discount?: AppliedCoupon | null;
}

/**
 * What a coupon may take money off an items order (what it charges once today), and what is charged
 * with it undiscounted: a subscription plan's first period (with a free trial, nothing of the plan).
 */
function discountable(order: PricedOrder): { amount: number; alongside: number } {
  const terms = subscriptionTerms(order);
  const alongside = terms && !terms.trialDays ? terms.renewalAmount : 0;
  return { amount: (terms?.dueNow ?? order.total) - alongside, alongside };
}

export function pageView(t: Page, methods: PayMethods, form: PageForm = {}) {
  const { merchant, link } = t;
  // The merchant's look with the link's overrides (logo, colour, button style and label).
  const look = payBranding(merchant, parseLinkBranding(link?.branding));
  const product = link?.type === 'product' ? link.product : null;
  const items = t.items ? itemsView(t.items, t.currency, form.order ?? (form.values ? orderChoiceFrom(form.values, t.items) : defaultChoice()), form.errors, t.custom ?? null) : null;
  const custom = t.custom ? customAmountView(t.custom, t.currency, maxOpenAmount(t.currency), form.values ?? {}) : null;
  // An items order whose customer-chosen amount is still to come names no total yet; a free trial's
  // plan is not charged today: the button says what is.
  const amount = t.amount === null ? (items?.custom && !items.custom.added && !items.custom.optional ? null : (items?.dueToday ?? items?.total ?? null)) : formatMoney(t.amount, t.currency);
  const discount = form.discount ?? null;
  // What a customer can still get: slots held by checkouts under way are not on offer.
  const left = link?.showRemaining ? remaining({ paymentLimit: link.paymentLimit, paidCount: link.paidCount + link.heldCount }) : null;
  return {
    // The layout appends the merchant's name: "Summer sale · Acme", "Make a payment · Acme".
    title: link ? link.name : t.amount === null ? 'Make a payment' : `Pay ${formatMoney(t.amount, t.currency)}`,
    brand: look.color,
    look,
    merchant: merchantView(merchant),
    // Without a link, the page is the merchant's own: its name is the heading (and no header repeats it).
    heading: link ? link.name : merchant.name,
    merchantHeading: !link,
    // A request named after its description shows it once.
    description: link ? (link.description === link.name ? null : link.description) : t.amount === null ? 'Enter the amount you would like to pay.' : null,
    product: product ? { name: product.name, description: product.description, price: formatMoney(product.price, product.currency) } : null,
    amount,
    // "Pay €45.00", "Donate €25.00" (the look's label), with a coupon's new total once applied.
    buttonText: buttonText(look, discount ? discount.total : amount),
    items,
    custom,
    notice: form.notice ?? null,
    lines: t.lines?.length ? lineItemsView(t.lines, t.currency) : null,
    open: t.amount === null && !items && !custom ? { currency: t.currency, symbol: currencySymbol(t.currency), max: maxOpenLabel(t.currency) } : null,
    remaining: left,
    // A link sent to a customer carries their signed id (?c=); the checkout reads it back from the URL.
    action: form.recipient ? `${t.action}?c=${encodeURIComponent(form.recipient)}` : t.action,
    values: form.values ?? {},
    errors: form.errors ?? {},
    // With several payment methods the customer picks one (a radio group named `provider`); with one, nothing to pick.
    methods: methods.options.length > 1 ? methods.options : null,
    unavailable: methods.options.length === 0,
    // Some method bills subscriptions: a plan can be paid here.
    subscriptions: methods.options.some((o) => o.subscriptions),
    // Links that allow coupon codes show the field (and, once applied, the new total).
    coupon: Boolean(link?.allowCoupons),
    // What the link collects beyond name and email (views/pay/_collect.eta).
    collect: link?.collect ?? null,
    discount,
  };
}

/** "j•••@example.com", "•••• 5678": enough for a customer to recognise their own address, not to learn one. */
function masked(address: string): string {
  const at = address.indexOf('@');
  if (at > 0) return `${address[0]}•••${address.slice(at)}`;
  return `•••• ${address.slice(-4)}`;
}

const FAST_PATH = /^\/([^/%]+)(?:\/([^/%]+))?$/;

/** Stands where the CSP nonce goes in a cached page: random per process, so no merchant text can spell it. */
const NONCE_MARK = `nonce${randomBytes(16).toString('hex')}`;

interface CachedPage {
  merchant: Merchant;
  methods: PayMethods;
  amount: number | null;
  currency: string;
  /** The page cut at each NONCE_MARK: `parts.join(nonce)` is the page. */
  parts: string[];
}

/**
 * Pay pages rendered whole, once per version of what they show. The lookups cache hands out the same
 * merchant, link and methods objects until something changes (or its TTL passes), and a new object
 * misses here, so a cached page is never staler than the lookups it was made from. Per request only
 * the CSP nonce is put in. Only the plain page (no form values, errors or recipient) is cached.
 */
class RenderedPages {
  /** By link (or by merchant for the merchant's own pages), then by form action (`/acme`, `/acme/12.50`). */
  private readonly byOwner = new WeakMap<object, Map<string, CachedPage>>();
  constructor(private readonly render: (t: Page, methods: PayMethods, nonce: string) => string) {}

  get(t: Page, methods: PayMethods): CachedPage {
    const owner: object = t.link ?? t.merchant;
    let pages = this.byOwner.get(owner);
    let page = pages?.get(t.action);
    if (page && page.merchant === t.merchant && page.methods === methods && page.amount === t.amount && page.currency === t.currency) return page;
    page = { merchant: t.merchant, methods, amount: t.amount, currency: t.currency, parts: this.render(t, methods, NONCE_MARK).split(NONCE_MARK) };
    if (!pages) this.byOwner.set(owner, (pages = new Map()));
    // Amount URLs are open-ended (`/acme/1.00`, `/acme/1.01`…): keep a bounded few per merchant.
    if (pages.size >= 100) pages.clear();
    pages.set(t.action, page);
    return page;
  }
}

/** What a directly answered pay page needs of the app. */
export interface DirectPayPageApp {
  /**
   * The headers every response carries — request id, CSP (with a fresh nonce and `formOrigins` in
   * `form-action`), security headers — as a flat `[name, value, …]` list, with the nonce.
   */
  headers(req: IncomingMessage, formOrigins: readonly string[]): { nonce: string; headers: string[] };
  /** The client address as the app trusts it (TRUST_PROXY). */
  ipOf(req: IncomingMessage): string | undefined;
}

/** The pay-page handlers: `fastGet` (an Express middleware) and `direct` (before Express, see there). */
export interface PayPageHandlers {
  fastGet: express.RequestHandler;
  /**
   * Answers a plain pay-page GET on node:http's own request and response, without Express (whose
   * per-request set-up cost more than the page itself): resolves true when it answered, false when
   * the request is anything else — another method, a query the page reads (`?c=`, `?back=`),
   * conditional headers, or a URL that is not a page to show (redirects, 404, closed links) — which
   * Express then answers as before. Nothing is written to `res` before it decides.
   */
  direct(req: IncomingMessage, res: ServerResponse, app: DirectPayPageApp): Promise<boolean>;
}

/**
 * Mounts GET (the page) and POST (the checkout) for `/:handle` and `/:handle/:segment` on `router`,
 * and returns a middleware that answers plain pay-page GETs without walking the router (the app
 * mounts it first: router matching was a tenth of a pay page's CPU). Anything unusual (encoded
 * characters, other methods) goes on to the router.
 */
export function payPageRoutes(router: express.Router, rt: Deps, render: Renderer): PayPageHandlers {
  // Small: a few short fields, what a link collects (up to 10 custom fields, an address,
  // instructions) and an items link's quantity per product (links/items.ts ITEMS_MAX). Only on the
  // POST routes, so GETs never parse anything.
  const body = express.urlencoded({ extended: false, limit: '16kb', parameterLimit: 40 + ITEMS_MAX });

  async function show(req: Request, res: Response, target: PayTarget, status = 200, form?: Parameters<typeof pageView>[2], lookups: PayLookups = cached): Promise<void> {
    switch (target.kind) {
      case 'not_found':
        throw new NotFoundError();
      case 'redirect':
        // 308 keeps a POST a POST; GETs get the classic permanent redirect.
        return res.redirect(req.method === 'GET' || req.method === 'HEAD' ? (target.elsewhere ? 302 : 301) : target.elsewhere ? 303 : 308, target.location);
      case 'limit_reached':
        res.set('Cache-Control', 'no-store');
        return render(req, res, 'pay/limit', { title: 'Payment limit reached', brand: target.merchant.brandColor, merchant: merchantView(target.merchant), linkName: target.link.name }, 410);
      case 'too_many': {
        const minutes = Math.max(1, Math.ceil(target.retryMs / 60_000));
        res.set('Cache-Control', 'no-store').set('Retry-After', String(Math.ceil(target.retryMs / 1000)));
        return render(req, res, 'pay/busy', { title: 'Too many attempts', brand: target.merchant.brandColor, merchant: merchantView(target.merchant), name: target.name, minutes }, 429);
      }
      case 'request_expired':
        res.set('Cache-Control', 'no-store');
        return render(req, res, 'pay/expired', { title: 'Payment request expired', brand: target.merchant.brandColor, merchant: merchantView(target.merchant), name: target.name, expiredOn: dateTimeIn(target.expiredAt, target.merchant.timezone), refreshAction: target.refreshAction }, 410);
      case 'all_held': {
        // Not 410 (it may free up) and not a 5xx (nothing is wrong with the server, and proxies or
        // monitors would treat it as an outage): the page is 200; a checkout POST that found no slot is
        // 409 Conflict with Retry-After, as the state of the link, not the request, is what stops it.
        const at = await rt.checkout.holdsFreeAt(target.link.key);
        const minutes = at ? minutesUntil(at, rt.clock.now()) : 1;
        res.set('Cache-Control', 'no-store');
        if (status === 409) res.set('Retry-After', String(minutes * 60));
        const retryUrl = req.method === 'GET' ? req.originalUrl : req.originalUrl.split('?')[0];
        return render(req, res, 'pay/held', { title: 'All spots are being paid for', brand: target.merchant.brandColor, merchant: merchantView(target.merchant), linkName: target.link.name, minutes, refresh: minutes * 60, retryUrl }, status);
      }
      case 'page': {
        const methods = await lookups.methods(target.merchant.key);
        if (methods.formOrigins.length) res.locals.allowFormAction(methods.formOrigins);
        res.set('Cache-Control', 'no-store');
        // The plain page (most visits) is rendered once per version of the link (RenderedPages).
        if (status === 200 && !form?.values && !form?.errors && !form?.recipient && !form?.order && !form?.notice) return sendHtml(req, res, pages.get(target, methods).parts.join(res.locals.cspNonce as string));
        return render(req, res, 'pay/page', pageView(target, methods, form), status);
      }
    }
  }

  const cached = cachedLookups(rt);
  const fresh = databaseLookups(rt);
  const pages = new RenderedPages((t, methods, nonce) => render.html('pay/page', { ...pageView(t, methods), cspNonce: nonce }));

  /** The `?c=` recipient token as given (checked only when a checkout uses it). */
  const recipientParam = (req: Request): string | null => {
    if (!req.url.includes('?')) return null;
    const c = req.query.c;
    return typeof c === 'string' && c.length <= 120 ? c : null;
  };

  /**
   * Who is paying, when a signed URL says so: the customer a sent link was for (its `?c=`), or the
   * customer of a payment request (its `/r/<token>` is signed). A smart link's public URL names no
   * one, even when the link was made for one customer: that payer is matched or created by email
   * when the payment succeeds. A forged or altered `?c=` is ignored.
   */
  /**
   * What the form shows filled in. Read only for a URL with a query, so a plain visit (the hot path)
   * reads nothing more: what the customer typed before "Cancel and go back" (`?back=<checkout id>`,
   * a checkout of this very page), else the customer a sent link was for (its signed `?c=`, a
   * customer of this merchant). A forged, foreign or finished one fills in nothing.
   */
  async function prefill(req: Request, target: PayTarget): Promise<Record<string, string> | undefined> {
    if (target.kind !== 'page' || !req.url.includes('?')) return undefined;
    const back = req.query.back;
    if (typeof back === 'string' && back.length <= 64) {
      const s = await rt.checkout.getSession(back);
      if (s && s.status !== 'completed' && s.merchantKey === target.merchant.key && s.linkKey === (target.link?.key ?? null) && s.currency === target.currency) {
        // An items order comes back with its quantities (the lines it bought, by product); a coupon and what was collected with it.
        const quantities = Object.fromEntries((target.items ?? []).map((i) => [quantityField(i.product.id), String(s.lineItems.find((l) => l.productId === i.product.id)?.quantity ?? 0)]));
        return {
          name: s.customerName ?? '',
          email: s.customerEmail ?? '',
          ...(target.amount === null && !target.items ? { amount: toDecimalString(s.discount?.amountBefore ?? s.amount, s.currency) } : {}),
          ...quantities,
          ...(s.discount ? { coupon: s.discount.code } : {}),
          ...collectedValues(s.collected),
        };
      }
    }
    const id = rt.tokens.recipientOf(recipientParam(req));
    if (id) {
      const [customer] = await rt.customers.getMany(target.merchant.key, [id]);
      if (customer) return { name: customer.name, email: customer.email ?? '' };
    }
    return undefined;
  }

  async function payingCustomer(req: Request, target: Page): Promise<number | null> {
    const id = rt.tokens.recipientOf(recipientParam(req));
    if (id) {
      const [customer] = await rt.customers.getMany(target.merchant.key, [id]);
      if (customer) return customer.key;
    }
    return target.link?.kind === 'request' ? target.link.customerKey : null;
  }

  /**
   * `/r/<token>`: a payment request. A short token (23 characters) names a request: pending → its
   * pay page; paid → its receipt; expired → a 410 page naming the merchant; cancelled, forged,
   * altered or unknown → the same 404. A forged token is refused before any database read. The older
   * `lnk_….<mac>` tokens (Text-to-Pay before requests) still open their link.
   */
  async function resolveRequest(token: string): Promise<PayTarget> {
    if (token.length < 30) {
      const request = await rt.requests.byToken(token);
      if (!request || request.status === 'cancelled') return NOT_FOUND;
      const merchant = await rt.merchants.getByKey(request.merchantKey);
      if (!merchant) return NOT_FOUND;
      if (request.status === 'paid') {
        const paid = (await rt.payments.list(merchant.key, { limit: 20 }, { linkKey: request.link.key })).data.find((p) => p.paidAt);
        return paid ? { kind: 'redirect', location: `/receipt/${paid.id}`, elsewhere: true } : NOT_FOUND;
      }
      if (request.status === 'expired') {
        // The refresh flow, where the merchant allows it and no new link was sent yet.
        const refreshAction = request.allowRefresh && !request.refreshedTo ? `/r/${encodeURIComponent(token)}/refresh` : null;
        return { kind: 'request_expired', merchant, name: request.link.name, expiredAt: request.link.expiresAt!, refreshAction };
      }
      const lockedMs = await rt.requests.lockedFor(request.link.key);
      if (lockedMs) return { kind: 'too_many', merchant, name: request.link.name, retryMs: lockedMs };
      const link = await rt.checkout.findPayableRequest(request.link.id);
      if (!link) return NOT_FOUND;
      const target = linkTarget(merchant, link, `/r/${encodeURIComponent(token)}`, rt.clock.now().getTime());
      // What the amount is made of, when the merchant listed it.
      return target.kind === 'page' && request.lineItems.length ? { ...target, lines: request.lineItems } : target;
    }
    const linkId = rt.tokens.requestOf(token);
    // Only the one spelling we issue: base64url's last character carries spare bits, so another
    // character there decodes to the same MAC (an edited URL must not still open the request).
    if (!linkId) return NOT_FOUND;
    const link = await rt.checkout.findPayableRequest(linkId);
    if (!link) return NOT_FOUND;
    const merchant = await rt.merchants.getByKey(link.merchantKey);
    if (!merchant) return NOT_FOUND;
    return linkTarget(merchant, link, `/r/${encodeURIComponent(token)}`, rt.clock.now().getTime());
  }

  const views = rt.views;

  async function get(req: Request, res: Response, segment: string | null): Promise<void> {
    const target = await resolvePayTarget(cached, search(req.originalUrl), String(req.params.handle), segment);
    // A view of a link that can take a payment (a closed or unknown one is no step towards paying);
    // the recorder leaves out HEAD, prefetches and bots, and writes in batches after the response.
    if (views && target.kind === 'page' && target.link) views.record(req, req.ip, target.link, target.merchant.id);
    await show(req, res, target, 200, { recipient: recipientParam(req), values: await prefill(req, target) });
  }

  /** Checkout: validate, open a session + pending payment, hand the customer to the provider. */
  async function post(req: Request, res: Response, segment: string | null): Promise<void> {
    // Read again: the link may have closed since the page was shown; then nothing is written.
    const target = await resolvePayTarget(fresh, search(req.originalUrl), String(req.params.handle), segment);
    await checkoutFor(req, res, target);
  }

  /**
   * Checkout velocity: per client address on every pay page, and per payment request. Over → the 429
   * page (nothing is written). Only checkouts count: showing a page never touches the limiters.
   */
  async function overLimit(req: Request, target: Page): Promise<PayTarget | null> {
    const checks: [Limiter, string][] = [[rt.checkoutLimiter.perIp, limitKey(req.ip)]];
    if (target.link?.kind === 'request') checks.push([rt.checkoutLimiter.perRequest, String(target.link.key)]);
    const wait = await consumeEach(checks);
    return wait === null ? null : { kind: 'too_many', merchant: target.merchant, name: target.link?.name ?? null, retryMs: wait };
  }

  /** What the customer typed, to show again (bounded). */
  const postedValues = (raw: Record<string, unknown>, t: Page) => ({ ...postedCollectValues(raw, t.link?.collect ?? null), ...Object.fromEntries(['name', 'email', 'amount', 'amount_other', 'provider'].map((k) => [k, typeof raw[k] === 'string' ? (raw[k] as string).slice(0, 254) : ''])), coupon: postedCoupon(raw) });

  /** The pay page again with a coupon's new total (200), or its message by the field (422). Nothing is written. */
  async function applyCoupon(req: Request, res: Response, target: Page, raw: Record<string, unknown>, order?: OrderChoice): Promise<void> {
    let amount = target.amount;
    let alongside = 0;
    const errors: Record<string, string> = {};
    if (target.items) {
      // An items order: the discount applies to what it charges once today, priced from the link.
      const priced = priceOrder(target.items, target.currency, order!, target.custom ?? null);
      if (priced.ok) ({ amount, alongside } = discountable(priced.order));
      else Object.assign(errors, priced.errors);
    } else if (amount === null) {
      // An open or customer-chosen amount: the discount needs the amount first.
      const chosen = target.custom ? chosenAmount(raw) : null;
      const parsed = parseCheckoutForm({ name: 'x', email: 'x@example.com', amount: chosen ? (chosen.ok ? chosen.text : '') : raw.amount }, { currency: target.currency });
      if (chosen && !chosen.ok) errors.amount = chosen.message;
      else if (parsed.ok) amount = parsed.value.amount!;
      else Object.assign(errors, { amount: parsed.errors.amount });
    }
    const step = amount === null ? null : await couponStep(rt, target.merchant.key, true, postedCoupon(raw), amount, target.currency, alongside);
    if (step?.kind === 'refused') errors.coupon = step.message;
    const discount = step?.kind === 'applied' ? step.view : null;
    return show(req, res, target, Object.keys(errors).length ? 422 : 200, { values: postedValues(raw, target), errors, recipient: recipientParam(req), discount, order }, fresh);
  }

  async function checkoutFor(req: Request, res: Response, target: PayTarget): Promise<void> {
    if (target.kind !== 'page') return show(req, res, target, target.kind === 'all_held' ? 409 : 200);
    const raw = (req.body ?? {}) as Record<string, unknown>;
    const order = target.items ? orderChoiceFrom(raw, target.items) : undefined;
    const typed = () => postedValues(raw, target);
    const again = (status: number, errors: Record<string, string>, extra: Partial<PageForm> = {}) => show(req, res, target, status, { values: typed(), errors, recipient: recipientParam(req), order, ...extra }, fresh);
    const invalid = (errors: Record<string, string>) => again(422, errors);
    // A quantity stepper (+/−) or "Update total": the page again with the new quantities. Nothing is
    // written, so, like showing the page, it does not count as a checkout attempt.
    if (target.items && typeof raw.step === 'string') {
      const stepped = applyStep(target.items, order!, raw.step.slice(0, 80));
      // An amount typed on an items link is judged too (an empty one only when the customer pays).
      const priced = priceOrder(target.items, target.currency, stepped, stepped.amount ? (target.custom ?? null) : null);
      return again(priced.ok ? 200 : 422, priced.ok ? {} : priced.errors, { order: stepped });
    }
    const limited = await overLimit(req, target);
    if (limited) return show(req, res, limited);
    const allowsCoupons = Boolean(target.link?.allowCoupons);
    // "Apply" (a coupon typed): the page again with the new total, before anything is paid. Pressing
    // Enter in another field clicks Apply too (the form's first button): with no code, that pays.
    if (allowsCoupons && raw.apply !== undefined && postedCoupon(raw)) return applyCoupon(req, res, target, raw, order);
    const methods = await fresh.methods(target.merchant.key);
    // A customer-chosen amount: a suggested one or "Other" (order-view.ts chosenAmount). On an items
    // link it is part of the order, priced with it below.
    const chosen = target.custom && !target.items ? chosenAmount(raw) : null;
    const parsed = parseCheckoutForm(chosen ? { ...raw, amount: chosen.ok ? chosen.text : '' } : req.body, target.amount === null && !target.items ? { currency: target.currency } : null);
    const errors: Record<string, string> = parsed.ok ? {} : { ...parsed.errors };
    if (chosen && !chosen.ok) errors.amount = chosen.message;
    else if (chosen && target.custom && parsed.ok) {
      const { min, max } = target.custom;
      if (parsed.value.amount! < min) errors.amount = `The amount must be at least ${formatMoney(min, target.currency)}.`;
      else if (max !== null && parsed.value.amount! > max) errors.amount = `The amount can be at most ${formatMoney(max, target.currency)}.`;
    }
    // An items order is priced here, from the link: posted prices are never read, quantities are bounded.
    const priced = target.items ? priceOrder(target.items, target.currency, order!, target.custom ?? null) : null;
    if (priced && !priced.ok) Object.assign(errors, priced.errors);
    // A plan is a subscription: only methods whose provider bills subscriptions can take it.
    const terms = priced?.ok ? subscriptionTerms(priced.order) : null;
    const plan = terms?.plan ?? null;
    const options = plan ? methods.options.filter((o) => o.subscriptions) : methods.options;
    if (plan && !options.length) errors.plan = `Subscriptions cannot be paid online here yet. ${sections(target.items ?? []).oneTime.length ? 'Choose “No plan”, or contact the business to subscribe.' : 'Please contact the business to subscribe.'}`;
    // Several methods: the customer must pick one of those shown; one: the field is not needed (and ignored).
    const posted = typeof raw.provider === 'string' ? raw.provider : '';
    const provider = options.length === 1 ? options[0].id : posted;
    // A method shown on the page that cannot bill the chosen plan is refused, never silently swapped.
    if (plan && options.length && methods.options.some((o) => o.id === posted) && !options.some((o) => o.id === posted)) errors.provider = 'This payment method cannot pay subscriptions: choose another.';
    else if (options.length > 1 && !options.some((o) => o.id === provider)) errors.provider = 'Choose how you want to pay.';
    const collected = parseCollected(raw, target.link?.collect ?? null);
    if (!collected.ok) Object.assign(errors, collected.errors);
    // The code is judged with the rest (when the total is known), so every problem shows at once.
    // A plan's free trial: today's charge leaves out the plan's line; a plan charged today is not discounted.
    const part = priced?.ok ? discountable(priced.order) : null;
    const before = priced ? (part?.amount ?? null) : (target.amount ?? (parsed.ok && !errors.amount ? parsed.value.amount! : null));
    const coupon = before === null ? ({ kind: 'none' } as const) : await couponStep(rt, target.merchant.key, allowsCoupons, postedCoupon(raw), before, target.currency, part?.alongside ?? 0);
    if (coupon.kind === 'refused') errors.coupon = coupon.message;
    const discount = coupon.kind === 'applied' ? coupon.view : null;
    if (!parsed.ok || !collected.ok || Object.keys(errors).length) return again(422, errors, { discount: errors.coupon ? null : discount });
    const form: CheckoutForm = parsed.value;
    // The total the page showed, when the quantities typed since change it: show the new total first.
    if (priced?.ok && typeof raw.shown_total === 'string' && raw.shown_total !== String(priced.order.itemsTotal)) {
      return again(200, {}, { notice: `Your total is now ${formatMoney(priced.order.total, target.currency)}. Check your order and pay.`, discount });
    }
    const amount = coupon.kind === 'applied' ? coupon.total : priced?.ok ? (terms?.dueNow ?? priced.order.total) : (target.amount ?? form.amount!);
    const lineItems = terms ? terms.lines : priced?.ok ? priced.order.lines : target.lines;
    // What each renewal charges: the plan's line, without the one-time lines or a coupon.
    const recurring = terms ? { interval: terms.interval, count: terms.count, trialDays: terms.trialDays, renewalAmount: terms.renewalAmount, productId: terms.plan.id, productName: terms.plan.name } : null;
    const customerKey = await payingCustomer(req, target);
    let next;
    try {
      // "Cancel and go back" on the provider's page returns to this very page (with its ?c=).
      ({ next } = await rt.checkout.start(target.merchant, target.link, { amount, currency: target.currency, lineItems, name: form.name, email: form.email, customerKey, provider: provider || null, backPath: req.originalUrl, coupon: coupon.kind === 'applied' ? coupon.coupon : null, collected: collected.value, recurring }));
    } catch (err) {
      // The merchant changed their payment methods since the page was shown.
      if (err instanceof ValidationError) return invalid(err.byField());
      // Immediate capture found no slot to hold (others took the last ones since the page was shown).
      if (err instanceof NoSlotError && target.link) {
        const reason = err.loss.reason;
        return show(req, res, reason === 'all_held' ? { kind: 'all_held', merchant: target.merchant, link: target.link } : reason === 'limit_reached' ? { kind: 'limit_reached', merchant: target.merchant, link: target.link } : NOT_FOUND, 409);
      }
      throw err;
    }
    if ('redirect' in next) return res.redirect(303, next.redirect);
    res.set('Cache-Control', 'no-store').type('html').send(next.render);
  }

  async function direct(req: IncomingMessage, res: ServerResponse, app: DirectPayPageApp): Promise<boolean> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    // Conditional requests keep Express's freshness handling.
    if (req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined) return false;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const m = FAST_PATH.exec(q < 0 ? url : url.slice(0, q));
    // `/r/<token>` is a payment request; other reserved first segments are the app's own.
    if (!m || RESERVED_HANDLES.has(m[1].toLowerCase())) return false;
    const query = q < 0 ? '' : url.slice(q);
    if (query) {
      const params = new URLSearchParams(query);
      if (params.has('c') || params.has('back')) return false;
    }
    const target = await resolvePayTarget(cached, query, m[1], m[2] ?? null);
    if (target.kind !== 'page') return false;
    const methods = await cached.methods(target.merchant.key);
    const page = pages.get(target, methods);
    if (views && target.link) views.record(req, app.ipOf(req), target.link, target.merchant.id);
    const { nonce, headers } = app.headers(req, methods.formOrigins);
    headers.push('Cache-Control', 'no-store');
    const html = page.parts.join(nonce);
    if (html.length >= MIN_DYNAMIC_BYTES) {
      // Long enough to compress when asked: as any rendered page is sent.
      for (let i = 0; i < headers.length; i += 2) res.setHeader(headers[i], headers[i + 1]);
      await sendHtml(req, res, html);
      return true;
    }
    // The same headers sendHtml sets, in one writeHead.
    headers.push('Vary', 'HX-Request', 'Content-Type', 'text/html; charset=utf-8', 'Content-Length', String(Buffer.byteLength(html)));
    res.writeHead(200, headers);
    res.end(html);
    return true;
  }

  const fastGet: express.RequestHandler = (req, res, next) => {
    const m = req.method === 'GET' || req.method === 'HEAD' ? FAST_PATH.exec(req.path) : null;
    // `/r/<token>` is a payment request, not a merchant called "r" (a reserved handle).
    if (!m || m[1] === 'r') return next();
    req.params = { handle: m[1], ...(m[2] === undefined ? {} : { segment: m[2] }) };
    get(req, res, m[2] ?? null).catch(next);
  };

  router.get('/r/:token', async (req, res) => {
    const target = await resolveRequest(String(req.params.token));
    // Opening a request's page is a view of its link, like a smart link's (its audit trail shows it).
    if (views && target.kind === 'page' && target.link) views.record(req, req.ip, target.link, target.merchant.id);
    // The request names its customer: their name and email are filled in (they can change them).
    const customerKey = target.kind === 'page' ? target.link?.customerKey ?? null : null;
    const customer = customerKey === null ? null : (await rt.customers.summariesByKeys([customerKey])).get(customerKey);
    const values = (await prefill(req, target)) ?? (customer && !customer.deleted ? { name: customer.name, email: customer.email ?? '' } : undefined);
    await show(req, res, target, 200, { values });
  });
  /**
   * "Send me a new link" on an expired request that allows it: a new request goes to the contact on
   * file (the page only says where, masked); the form sends nothing else. Limited per client address
   * like checkouts; one new link per request.
   */
  router.post('/r/:token/refresh', async (req, res) => {
    const token = String(req.params.token);
    const request = await rt.requests.byToken(token);
    const merchant = request && request.status !== 'cancelled' ? await rt.merchants.getByKey(request.merchantKey) : null;
    if (!request || !merchant) throw new NotFoundError();
    const page = { title: 'A new payment link', brand: merchant.brandColor, merchant: merchantView(merchant), name: request.link.name };
    const wait = await consumeEach([[rt.checkoutLimiter.perIp, limitKey(req.ip)]]);
    if (wait !== null) return show(req, res, { kind: 'too_many', merchant, name: request.link.name, retryMs: wait });
    const result = await rt.requests.refresh(merchant, request);
    res.set('Cache-Control', 'no-store');
    if (result.ok) return render(req, res, 'pay/refreshed', { ...page, sent: { channel: result.channel === 'email' ? 'email' : 'text message', to: masked(result.to) } }, 201);
    if (result.reason === 'already') return render(req, res, 'pay/refreshed', { ...page, already: true }, 200);
    if (result.reason === 'unreachable') return render(req, res, 'pay/refreshed', { ...page, unreachable: true }, 409);
    // Not allowed (or not expired): the request's own page says what it is.
    return res.redirect(303, `/r/${encodeURIComponent(token)}`);
  });

  router.post('/r/:token', body, async (req, res) => {
    const target = await resolveRequest(String(req.params.token));
    await checkoutFor(req, res, target);
  });
  router.get('/:handle', (req, res) => get(req, res, null));
  router.post('/:handle', body, (req, res) => post(req, res, null));
  router.get('/:handle/:segment', (req, res) => get(req, res, String(req.params.segment)));
  router.post('/:handle/:segment', body, (req, res) => post(req, res, String(req.params.segment)));
  return { fastGet, direct };
}
