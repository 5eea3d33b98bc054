/**
 * The link form's live preview: the real pay-page template (views/pay/page.eta) rendered in
 * preview mode from what the merchant has typed so far. Dashboard routes (mounted under /app: the
 * session, CSRF on the POST, the signed-in merchant), and read-only: nothing is written, no view is
 * recorded, and the page it shows cannot be paid — its form has no action, its button does not
 * submit, and it is shown in a sandboxed iframe.
 *
 * - `GET /app/links/preview?link=<id>` (a saved link) or `?type=amount|product` (a new one): the
 *   preview as a whole document, the iframe's first `src` (works without JavaScript).
 * - `POST /app/links/preview[?link=<id>]` with the link form's fields: for htmx (as the merchant
 *   types) the iframe again, its document in `srcdoc`; without htmx ("Update preview", posted into
 *   the iframe by `formtarget`) the document itself.
 */
import express, { type Request, type Response } from 'express';
import type { AppDeps } from '../../web/deps.ts';
import type { Renderer } from '../../core/http.ts';
import { wantsFragment } from '../../core/http.ts';
import { NotFoundError } from '../../core/errors.ts';
import { parseDecimalAmount } from '../../core/money.ts';
import type { Merchant } from '../merchants/index.ts';
import { currencySchema } from '../merchants/index.ts';
import { checkoutDraftFromForm, itemsDraftFromForm, type Link, type LinkItem } from '../links/index.ts';
import type { PayableLink } from '../checkout/index.ts';
import { linkBrandingFromForm, linkBrandingInputSchema, mergeLinkBranding, storedLinkBranding } from '../branding/index.ts';
import { databaseLookups, pageView } from './pay-page.ts';

type Deps = Pick<AppDeps, 'links' | 'products'> & Parameters<typeof databaseLookups>[0];

const text = (v: unknown, max: number): string => (typeof v === 'string' ? v.slice(0, max) : '');

export function linkPreviewRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const lookups = databaseLookups(rt);

  /** The draft link as a pay page would show it: the saved link (if any) with the posted fields over it. */
  async function draft(merchant: Merchant, query: Record<string, unknown>, body: Record<string, unknown> | null): Promise<{ link: PayableLink; amount: number | null; currency: string }> {
    const id = typeof query.link === 'string' ? query.link : '';
    // Only the merchant's own links (another merchant's id is a 404, like everywhere else).
    const saved: Link | null = id ? await rt.links.get(merchant, id) : null;
    const asked = query.type ?? body?.type;
    const type = saved ? saved.type : asked === 'product' || asked === 'items' ? asked : 'amount';
    const posted = (k: string, max: number, fallback: string) => (body && k in body ? text(body[k], max) : fallback);

    let currency = saved?.currency ?? merchant.currency;
    let amount = saved?.type === 'amount' ? saved.amount ?? 0 : 0;
    let product: PayableLink['product'] = null;
    if (type === 'amount' && body) {
      const c = currencySchema.safeParse(text(body.currency, 8) || currency);
      if (c.success) currency = c.data;
      const typed = text(body.amount, 40).trim();
      const parsed = typed ? parseDecimalAmount(typed, currency, { ceiling: false }) : null;
      // Not (yet) an amount: the page shows zero in the currency, as a draft.
      amount = parsed?.ok ? parsed.minor : 0;
    }
    const productId = saved ? saved.productId : body ? text(body.product_id, 64) : '';
    if (type === 'product' && productId) {
      const p = await rt.products.get(merchant.key, productId).catch(() => null);
      if (p) {
        product = { key: p.key, id: p.id, name: p.name, description: p.description, price: p.price, currency: p.currency, active: true };
        amount = p.price;
        currency = p.currency;
      }
    }
    // Branding as posted; a value that would not save (a bad colour) shows the merchant's instead.
    let branding = saved?.branding ?? null;
    if (body) {
      const input = linkBrandingFromForm(body);
      const parsed = linkBrandingInputSchema.safeParse(input);
      if (input !== undefined) branding = mergeLinkBranding(null, parsed.success ? parsed.data : { ...input, color: null, button_style: null, button_label: null });
    }
    // What the checkout collects, a customer-chosen amount and an items link's lines, as typed so far.
    const ticked = body && type === 'items' ? itemsDraftFromForm(body) : undefined;
    let items: LinkItem[] = saved?.items ?? [];
    if (ticked) {
      const products = new Map((await rt.products.active(merchant.key)).map((p) => [p.id, p]));
      items = ticked.flatMap((i) => {
        const p = products.get(i.productId);
        return p ? [{ product: { key: p.key, id: p.id, name: p.name, description: p.description, price: p.price, currency: p.currency, active: true, recurring: p.recurring }, quantity: i.quantity }] : [];
      });
      if (items.length) currency = items[0].product.currency;
    }
    const typed = body ? checkoutDraftFromForm(body, currency, { forItems: type === 'items' }) : null;
    const customAmount = type !== 'product' ? (typed?.customAmount !== undefined ? typed.customAmount : saved?.customAmount ?? null) : null;
    const limitMode = body ? text(body.limit, 16) : null;
    const limit = body ? (limitMode === 'once' ? 1 : limitMode === 'multiple' ? Number(text(body.limit_count, 8)) || null : null) : saved?.paymentLimit ?? null;
    const link: PayableLink = {
      key: 0,
      id: saved?.id ?? 'lnk_preview',
      merchantKey: merchant.key,
      kind: 'smart',
      customerKey: null,
      expiresAt: null,
      type,
      name: posted('name', 120, saved?.name ?? '').trim() || 'Your link’s name',
      path: saved?.path ?? null,
      description: posted('description', 2000, saved?.description ?? '').trim() || null,
      amount: type === 'amount' && !customAmount ? amount : null,
      currency,
      paymentLimit: limit,
      paidCount: saved?.paidCount ?? 0,
      heldCount: 0,
      active: true,
      inactiveReason: null,
      showRemaining: body ? body.show_remaining === 'on' : saved?.showRemaining ?? false,
      redirectUrl: null,
      redirectTarget: 'same',
      branding: storedLinkBranding(branding),
      product,
      customAmount,
      items,
      allowCoupons: body ? body.allow_coupons === 'on' || body.allow_coupons === '1' : saved?.allowCoupons ?? false,
      collect: typed?.collect !== undefined ? typed.collect : saved?.collect ?? null,
    };
    return { link, amount: link.amount ?? (type === 'product' ? amount : null), currency };
  }

  async function previewHtml(req: Request, res: Response, body: Record<string, unknown> | null): Promise<string> {
    const merchant: Merchant = res.locals.merchant;
    const { link, amount, currency } = await draft(merchant, req.query as Record<string, unknown>, body);
    const methods = await lookups.methods(merchant.key);
    // Shaped as the pay page would be (pay-page.ts linkTarget): an order of lines, or a chosen amount.
    const items = link.type === 'items' ? link.items.filter((i) => i.product.active) : [];
    const page = { kind: 'page' as const, merchant, link, amount: link.type === 'items' ? (items.length ? null : 0) : amount ?? (link.customAmount ? null : 0), currency, action: '', ...(items.length ? { items } : {}), ...(link.customAmount ? { custom: link.customAmount } : {}) };
    const view = pageView(page, methods);
    return render.html('pay/page', { ...view, preview: true, cspNonce: '' });
  }

  /** The document itself, framed by the dashboard only. */
  function sendDocument(res: Response, html: string): void {
    res.set({
      'Cache-Control': 'no-store',
      'X-Frame-Options': 'SAMEORIGIN',
      'X-Robots-Tag': 'noindex',
      'Content-Security-Policy': String(res.getHeader('Content-Security-Policy') ?? '').replace(/frame-ancestors 'none'/, "frame-ancestors 'self'"),
    });
    res.type('html').send(html);
  }

  router.get('/links/preview', async (req, res) => {
    sendDocument(res, await previewHtml(req, res, null));
  });

  router.post('/links/preview', async (req, res) => {
    const html = await previewHtml(req, res, (req.body ?? {}) as Record<string, unknown>);
    if (!wantsFragment(req)) return sendDocument(res, html);
    res.set('Cache-Control', 'no-store');
    await render(req, res, 'branding/_preview_frame', { srcdoc: html });
  });

  return router;
}
