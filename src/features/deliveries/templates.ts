/**
 * Message templates: what a customer reads in a message carrying a link, per (kind, channel) for
 * every installed channel. Each merchant may override the defaults. A channel that sends to an email
 * address takes the email style (subject, text and HTML); every other channel — SMS, WhatsApp or a
 * plugin's own — one short text. Templates are plain text with `{{placeholders}}`; email HTML is
 * built around the text by views/emails, never from merchant HTML.
 */
import { z } from 'zod';
import type { Db } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { parseBody } from '../../core/http.ts';
import { ValidationError } from '../../core/errors.ts';
import type { ChannelDirectory, ChannelInfo } from './channels.ts';

export const TEMPLATE_KINDS = ['initial', 'reminder', 'receipt'] as const;
export type TemplateKind = (typeof TEMPLATE_KINDS)[number];
/** Receipts go by email only (to the address the payer entered): their templates exist for email-style channels. */
export const hasTemplate = (kind: TemplateKind, style: TemplateStyle): boolean => kind !== 'receipt' || style === 'email';
/** How a template is written and sent: `email` has a subject and becomes HTML; `text` is one short message. */
export type TemplateStyle = ChannelInfo['style'];
/** The longest text-style message (4 SMS). */
export const TEXT_MAX = 640;

export const PLACEHOLDERS = {
  first_name: 'The customer’s first name',
  name: 'The customer’s full name',
  business: 'Your business name',
  link_name: 'The link’s name',
  amount: 'The amount, e.g. €39.00',
  url: 'The payment link (in a receipt: the receipt page)',
  reminder_number: 'Which reminder this is (1, 2, …)',
} as const;
export type Placeholder = keyof typeof PLACEHOLDERS;
export type TemplateValues = Record<Placeholder, string>;

export interface MessageTemplate {
  kind: TemplateKind;
  /** A channel id. */
  channel: string;
  style: TemplateStyle;
  /** Email style only. */
  subject: string | null;
  body: string;
  /** False while the merchant uses the default. */
  custom: boolean;
}

/** The defaults by style: every text channel (SMS, WhatsApp, a plugin's own) starts from the same short text. */
const DEFAULTS: Record<TemplateKind, Record<TemplateStyle, { subject: string | null; body: string }>> = {
  initial: {
    email: {
      subject: '{{business}}: your payment link for {{link_name}}',
      body: 'Hi {{first_name}},\n\n{{business}} has sent you a payment link for {{link_name}} ({{amount}}). You can pay securely online using the button below.',
    },
    text: { subject: null, body: 'Hi {{first_name}}, your {{business}} payment link for {{link_name}} ({{amount}}): {{url}}' },
  },
  reminder: {
    email: {
      subject: 'Reminder: {{link_name}} from {{business}}',
      body: 'Hi {{first_name}},\n\nThis is a friendly reminder that your payment for {{link_name}} ({{amount}}) to {{business}} is still open.',
    },
    text: { subject: null, body: 'Hi {{first_name}}, a reminder from {{business}}: {{link_name}} ({{amount}}) is still open. Pay here: {{url}}' },
  },
  receipt: {
    email: {
      subject: 'Your receipt from {{business}}',
      body: 'Hi {{first_name}},\n\nThank you for your payment of {{amount}} to {{business}} for {{link_name}}. Your receipt is below; keep it for your records.',
    },
    // Not offered (receipts are emails); here so every kind has a default of each style.
    text: { subject: null, body: 'Thank you for your payment of {{amount}} to {{business}}. Receipt: {{url}}' },
  },
};

export function defaultTemplate(kind: TemplateKind, channel: Pick<ChannelInfo, 'id' | 'style'>): MessageTemplate {
  return { kind, channel: channel.id, style: channel.style, ...DEFAULTS[kind][channel.style], custom: false };
}

/** A channel's style; a channel no longer installed is read by its id (only `email` was ever email-style). */
const styleOf = (channels: ChannelDirectory, id: string): TemplateStyle => channels.get(id)?.style ?? (id === 'email' ? 'email' : 'text');

/** Placeholders a text uses that do not exist. */
export function unknownPlaceholders(text: string): string[] {
  return [...text.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)].map((m) => m[1]).filter((name) => !(name in PLACEHOLDERS));
}

/** Substitutes placeholders. Values never carry line breaks into a one-line field (subjects). */
export function fill(text: string, values: TemplateValues, opts: { oneLine?: boolean } = {}): string {
  const out = text.replace(/\{\{\s*([a-z_]+)\s*\}\}/g, (whole, name: string) => (name in values ? values[name as Placeholder] : whole));
  return opts.oneLine ? out.replace(/[\r\n\u2028\u2029]+/g, ' ').trim() : out;
}

const placeholdersKnown = (s: string | null | undefined) => !s || unknownPlaceholders(s).length === 0;
const knownList = Object.keys(PLACEHOLDERS).map((p) => `{{${p}}}`).join(', ');

/** A template as posted; `channel` must be an installed channel and the rules follow its style. */
export const templateInputSchema = (channels: ChannelDirectory) => z
  .object({
    kind: z.enum(TEMPLATE_KINDS, { error: 'kind must be "initial", "reminder" or "receipt".' }),
    channel: z
      .string({ error: 'channel must be a channel id.' })
      .refine((id) => channels.has(id), { message: 'No such channel is installed.', params: { code: 'unknown_channel' } }),
    subject: z
      .string({ error: 'The subject must be text.' })
      .trim()
      .max(200, 'Keep the subject under 200 characters.')
      .refine((s) => !/[\r\n\u0000-\u001f\u007f\u2028\u2029]/.test(s), 'A subject cannot contain line breaks or control characters.')
      .refine(placeholdersKnown, `Unknown placeholder. You can use ${knownList}.`)
      .optional(),
    body: z
      .string({ error: 'Enter the message.' })
      .trim()
      .min(1, 'Enter the message.')
      .max(2000, 'Keep the message under 2000 characters.')
      .refine(placeholdersKnown, `Unknown placeholder. You can use ${knownList}.`),
  })
  .superRefine((t, ctx) => {
    if (!channels.has(t.channel)) return;
    const email = styleOf(channels, t.channel) === 'email';
    if (!hasTemplate(t.kind, email ? 'email' : 'text')) ctx.addIssue({ code: 'custom', path: ['channel'], message: 'Receipts are sent by email only.', params: { code: 'unknown_channel' } });
    if (email && !t.subject) ctx.addIssue({ code: 'custom', path: ['subject'], message: 'Enter a subject for the email.' });
    if (!email && t.body.length > TEXT_MAX) ctx.addIssue({ code: 'custom', path: ['body'], message: `Keep text messages under ${TEXT_MAX} characters (4 SMS).` });
  });
export type TemplateInput = z.infer<ReturnType<typeof templateInputSchema>>;

export function createTemplateService({ db, clock, channels }: { db: Db; clock: Clock; channels: ChannelDirectory }) {
  const inputSchema = templateInputSchema(channels);
  const service = {
    /** Every (kind, channel) template of a merchant for the installed channels: theirs where saved, else the default. */
    async all(merchantKey: number): Promise<MessageTemplate[]> {
      const rows = (await db('message_templates').where({ merchant_id: merchantKey })) as any[];
      const installed = channels.list();
      return TEMPLATE_KINDS.flatMap((kind) =>
        installed.filter((channel) => hasTemplate(kind, channel.style)).map((channel): MessageTemplate => {
          const r = rows.find((x) => x.kind === kind && x.channel === channel.id);
          return r ? { kind, channel: channel.id, style: channel.style, subject: channel.style === 'email' ? r.subject : null, body: r.body, custom: true } : defaultTemplate(kind, channel);
        }),
      );
    },

    /** Templates of many merchants at once, keyed `${merchantKey}:${kind}:${channel}` (only saved ones). */
    async savedFor(merchantKeys: number[]): Promise<Map<string, MessageTemplate>> {
      const out = new Map<string, MessageTemplate>();
      if (!merchantKeys.length) return out;
      const rows = (await db('message_templates').whereIn('merchant_id', [...new Set(merchantKeys)])) as any[];
      for (const r of rows) out.set(`${r.merchant_id}:${r.kind}:${r.channel}`, { kind: r.kind, channel: r.channel, style: styleOf(channels, r.channel), subject: r.subject, body: r.body, custom: true });
      return out;
    },

    async get(merchantKey: number, kind: TemplateKind, channel: string): Promise<MessageTemplate> {
      const found = (await service.all(merchantKey)).find((t) => t.kind === kind && t.channel === channel);
      if (!found) throw new ValidationError([{ field: 'channel', code: 'unknown_channel', message: 'No such channel is installed.' }]);
      return found;
    },

    /** The style of a channel's templates. */
    styleOf: (channel: string): TemplateStyle => styleOf(channels, channel),

    /** Validates (422 by field) a merchant's template. */
    parse(raw: unknown): TemplateInput {
      return parseBody(inputSchema, raw);
    },

    async save(merchantKey: number, raw: unknown): Promise<MessageTemplate> {
      const t = service.parse(raw);
      const row = { merchant_id: merchantKey, kind: t.kind, channel: t.channel, subject: styleOf(channels, t.channel) === 'email' ? t.subject ?? null : null, body: t.body, updated_at: clock.now() };
      await db('message_templates').insert(row).onConflict(['merchant_id', 'kind', 'channel']).merge(['subject', 'body', 'updated_at']);
      return service.get(merchantKey, t.kind, t.channel);
    },

    /** Back to the default. */
    async reset(merchantKey: number, kind: string, channel: string): Promise<void> {
      if (!(TEMPLATE_KINDS as readonly string[]).includes(kind) || !channels.has(channel) || !hasTemplate(kind as TemplateKind, styleOf(channels, channel))) {
        throw new ValidationError([{ field: 'kind', code: 'invalid_template', message: 'No such template.' }]);
      }
      await db('message_templates').where({ merchant_id: merchantKey, kind, channel }).del();
    },
  };
  return service;
}

export type TemplateService = ReturnType<typeof createTemplateService>;
