/**
 * Settings → Message templates: the texts customers receive (first message and reminder) for every
 * installed channel — email, SMS, WhatsApp and any channel a plugin adds — and the receipt email
 * after a payment (with the switch that turns receipts off), each editable, with a
 * preview filled with sample values. The email
 * preview is the real email HTML, served by its own URL into a sandboxed frame with a CSP of its
 * own (the dashboard's CSP refuses the email's inline styles, so `srcdoc` would render it bare).
 */
import express from 'express';
import { Eta } from 'eta';
import type { AppDeps } from '../../web/deps.ts';
import { VIEWS_DIR } from '../../runtime.ts';
import { flash, wantsFragment, type Renderer } from '../../core/http.ts';
import { ValidationError } from '../../core/errors.ts';
import { currencyDigits } from '../../core/money.ts';
import type { Merchant } from '../merchants/index.ts';
import { compose } from './compose.ts';
import { PLACEHOLDERS, TEMPLATE_KINDS, TEXT_MAX, type MessageTemplate, type TemplateKind, type TemplateStyle } from './templates.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'config' | 'deliveries' | 'merchants' | 'templates'>;

export const KIND_LABELS: Record<TemplateKind, string> = { initial: 'First message', reminder: 'Reminder', receipt: 'Receipt' };

/** What the preview fills the placeholders with. */
export const SAMPLE = { customerName: 'Jane Doe', linkName: 'Spring membership', reminderNumber: 1, paymentId: 'pay_SAMPLE0000000000000000' } as const;

/** The email preview's own policy: its inline styles and nothing else; framed by the dashboard only. */
const PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'";

const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const isKind = (v: unknown): v is TemplateKind => (TEMPLATE_KINDS as readonly unknown[]).includes(v);

interface Card {
  id: string;
  kind: TemplateKind;
  channel: string;
  style: TemplateStyle;
  /** Longest body the form takes. */
  maxLength: number;
  title: string;
  custom: boolean;
  values: { subject: string; body: string };
  errors: Record<string, string>;
  preview: Preview;
}

interface Preview {
  id: string;
  channel: string;
  style: TemplateStyle;
  subject: string | null;
  text: string;
  /** Email: the URL of the framed HTML. */
  frameSrc: string | null;
  length: number;
  errors: string[];
}

export function templatesRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { templates } = rt;
  const { channels } = rt.deliveries;
  const isChannel = (v: unknown): v is string => typeof v === 'string' && channels.has(v);
  // Same settings as the delivery service's: HTML escapes, plain text does not.
  const eta = {
    html: new Eta({ views: VIEWS_DIR, cache: true, autoEscape: true }),
    text: new Eta({ views: VIEWS_DIR, cache: true, autoEscape: false, autoTrim: false }),
  };

  router.use('/settings/templates', (_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  const cardId = (kind: string, channel: string) => `tpl-${kind}-${channel}`;

  /** A template filled with the sample customer and link, in the merchant's name, colour and currency. */
  const sampleMessage = (merchant: Merchant, template: MessageTemplate) =>
    compose(eta, {
      template,
      business: merchant.name,
      brandColor: merchant.brandColor,
      customerName: SAMPLE.customerName,
      linkName: SAMPLE.linkName,
      amount: 39 * 10 ** currencyDigits(merchant.currency),
      currency: merchant.currency,
      url: template.kind === 'receipt' ? `${rt.config.baseUrl}/receipt/${SAMPLE.paymentId}` : `${rt.config.baseUrl}/${merchant.handle}/spring-membership`,
      reminderNumber: SAMPLE.reminderNumber,
    });

  /** The template as the customer would get it, with sample values; a template with mistakes shows them instead. */
  const preview = (merchant: Merchant, kind: TemplateKind, channel: string, values: { subject: string; body: string }): Preview => {
    const style = templates.styleOf(channel);
    const email = style === 'email';
    const base: Preview = { id: `${cardId(kind, channel)}-preview`, channel, style, subject: null, text: '', frameSrc: null, length: 0, errors: [] };
    try {
      templates.parse({ kind, channel, body: values.body, ...(email ? { subject: values.subject } : {}) });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      return { ...base, errors: err.errors.map((e) => e.message) };
    }
    const message = sampleMessage(merchant, { kind, channel, style, subject: email ? values.subject : null, body: values.body, custom: true });
    const query = new URLSearchParams({ kind, channel, subject: values.subject, body: values.body });
    return {
      ...base,
      subject: message.subject,
      text: email ? values.body : message.text,
      frameSrc: email ? `/app/settings/templates/preview.html?${query}` : null,
      length: message.text.length,
    };
  };

  const cards = async (merchant: Merchant, edited?: { kind: TemplateKind; channel: string; values: { subject: string; body: string }; errors: Record<string, string> }): Promise<Card[]> =>
    (await templates.all(merchant.key)).map((t) => {
      const mine = edited && edited.kind === t.kind && edited.channel === t.channel ? edited : null;
      const values = mine?.values ?? { subject: t.subject ?? '', body: t.body };
      return {
        id: cardId(t.kind, t.channel),
        kind: t.kind,
        channel: t.channel,
        style: t.style,
        maxLength: t.style === 'email' ? 2000 : TEXT_MAX,
        title: `${KIND_LABELS[t.kind]} · ${channels.label(t.channel)}`,
        custom: t.custom,
        values,
        errors: mine?.errors ?? {},
        preview: preview(merchant, t.kind, t.channel, values),
      };
    });

  const page = async (req: express.Request, res: express.Response, edited?: Parameters<typeof cards>[1], status = 200) => {
    const merchant: Merchant = res.locals.merchant;
    const all = await cards(merchant, edited);
    await render(
      req,
      res,
      'settings/templates',
      {
        title: 'Message templates',
        groups: TEMPLATE_KINDS.map((kind) => ({ kind, label: KIND_LABELS[kind], cards: all.filter((c) => c.kind === kind) })).filter((g) => g.cards.length),
        sendReceipts: merchant.sendReceipts,
        placeholders: Object.entries(PLACEHOLDERS).map(([name, description]) => ({ name, description })),
        sample: SAMPLE,
      },
      status,
    );
  };

  /** The posted card: which template and what was typed. */
  const posted = (body: Record<string, unknown>) => {
    const kind = body.kind;
    const channel = body.channel;
    if (!isKind(kind) || !isChannel(channel)) return null;
    return { kind, channel, values: { subject: text(body.subject), body: text(body.body) } };
  };

  router.get('/settings/templates', (req, res) => page(req, res));

  router.post('/settings/templates', async (req, res) => {
    const card = posted(req.body as Record<string, unknown>);
    if (!card) throw new ValidationError([{ field: 'kind', code: 'invalid_template', message: 'No such template.' }]);
    try {
      await templates.save(res.locals.merchant.key, { kind: card.kind, channel: card.channel, body: card.values.body, ...(templates.styleOf(card.channel) === 'email' ? { subject: card.values.subject } : {}) });
      flash(req, 'success', `${KIND_LABELS[card.kind]} by ${channels.label(card.channel)} saved. New messages use it.`);
      res.redirect(303, `/app/settings/templates#${cardId(card.kind, card.channel)}`);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      await page(req, res, { ...card, errors: err.byField() }, 422);
    }
  });

  /** Receipts on or off (a merchant setting, on by default): a checkbox, so absent means off. */
  router.post('/settings/receipts', async (req, res) => {
    const on = (req.body as Record<string, unknown>).send_receipts === 'on';
    const updated = await rt.merchants.setSendReceipts(res.locals.merchant, on);
    req.user!.merchant = updated;
    res.locals.merchant = updated;
    flash(req, 'success', on ? 'Customers get a receipt by email after they pay.' : 'Receipts are off: customers see their receipt page only.');
    res.redirect(303, '/app/settings/templates#receipts');
  });

  router.post('/settings/templates/reset', async (req, res) => {
    const { kind, channel } = req.body as Record<string, unknown>;
    await templates.reset(res.locals.merchant.key, text(kind), text(channel));
    flash(req, 'success', `${KIND_LABELS[kind as TemplateKind]} by ${channels.label(text(channel))} is back to the default.`);
    res.redirect(303, `/app/settings/templates#${cardId(text(kind), text(channel))}`);
  });

  /**
   * The preview of what is typed (nothing is saved): htmx gets the preview fragment as the merchant
   * types; without JavaScript the Preview button shows the page with that card as typed.
   */
  router.post('/settings/templates/preview', async (req, res) => {
    const card = posted(req.body as Record<string, unknown>);
    if (!card) throw new ValidationError([{ field: 'kind', code: 'invalid_template', message: 'No such template.' }]);
    if (!wantsFragment(req)) return page(req, res, { ...card, errors: {} });
    await render(req, res, 'settings/_template_preview', { preview: preview(res.locals.merchant, card.kind, card.channel, card.values) });
  });

  /** The email as HTML, for the preview frame only (an email-style channel: `email` unless another is named). */
  router.get('/settings/templates/preview.html', async (req, res) => {
    const merchant: Merchant = res.locals.merchant;
    const q = req.query as Record<string, unknown>;
    const kind = isKind(q.kind) ? q.kind : 'initial';
    const channel = isChannel(q.channel) && templates.styleOf(q.channel) === 'email' ? q.channel : 'email';
    const p = preview(merchant, kind, channel, { subject: text(q.subject), body: text(q.body) });
    let html: string;
    if (p.errors.length) {
      html = eta.html.renderString('<!doctype html><meta charset="utf-8"><body style="font-family:sans-serif;color:#b91c1c;padding:1rem"><% it.errors.forEach((e) => { %><p><%= e %></p><% }) %></body>', { errors: p.errors });
    } else {
      html = sampleMessage(merchant, { kind, channel, style: 'email', subject: text(q.subject), body: text(q.body), custom: true }).html!;
    }
    res.set('Content-Security-Policy', PREVIEW_CSP).set('X-Frame-Options', 'SAMEORIGIN').type('html').send(html);
  });

  return router;
}
