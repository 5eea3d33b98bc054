/**
 * Message templates: what a customer reads in an email, SMS or WhatsApp message carrying a link.
 * Each merchant may override the defaults per (kind, channel). Templates are plain text with
 * `{{placeholders}}`; email HTML is built around the text by views/emails, never from merchant HTML.
 */
import { z } from 'zod';
import type { Db } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { parseBody } from '../../core/http.ts';
import { ValidationError } from '../../core/errors.ts';

export const TEMPLATE_KINDS = ['initial', 'reminder'] as const;
export type TemplateKind = (typeof TEMPLATE_KINDS)[number];
export const TEMPLATE_CHANNELS = ['email', 'sms', 'whatsapp'] as const;
export type TemplateChannel = (typeof TEMPLATE_CHANNELS)[number];

export const PLACEHOLDERS = {
  first_name: 'The customer’s first name',
  name: 'The customer’s full name',
  business: 'Your business name',
  link_name: 'The link’s name',
  amount: 'The amount, e.g. €39.00',
  url: 'The payment link',
  reminder_number: 'Which reminder this is (1, 2, …)',
} as const;
export type Placeholder = keyof typeof PLACEHOLDERS;
export type TemplateValues = Record<Placeholder, string>;

export interface MessageTemplate {
  kind: TemplateKind;
  channel: TemplateChannel;
  /** Email only. */
  subject: string | null;
  body: string;
  /** False while the merchant uses the default. */
  custom: boolean;
}

const DEFAULTS: Record<TemplateKind, Record<TemplateChannel, { subject: string | null; body: string }>> = {
  initial: {
    email: {
      subject: '{{business}}: your payment link for {{link_name}}',
      body: 'Hi {{first_name}},\n\n{{business}} has sent you a payment link for {{link_name}} ({{amount}}). You can pay securely online using the button below.',
    },
    sms: { subject: null, body: 'Hi {{first_name}}, your {{business}} payment link for {{link_name}} ({{amount}}): {{url}}' },
    whatsapp: { subject: null, body: 'Hi {{first_name}}, your {{business}} payment link for {{link_name}} ({{amount}}): {{url}}' },
  },
  reminder: {
    email: {
      subject: 'Reminder: {{link_name}} from {{business}}',
      body: 'Hi {{first_name}},\n\nThis is a friendly reminder that your payment for {{link_name}} ({{amount}}) to {{business}} is still open.',
    },
    sms: { subject: null, body: 'Hi {{first_name}}, a reminder from {{business}}: {{link_name}} ({{amount}}) is still open. Pay here: {{url}}' },
    whatsapp: { subject: null, body: 'Hi {{first_name}}, a reminder from {{business}}: {{link_name}} ({{amount}}) is still open. Pay here: {{url}}' },
  },
};

export function defaultTemplate(kind: TemplateKind, channel: TemplateChannel): MessageTemplate {
  return { kind, channel, ...DEFAULTS[kind][channel], custom: false };
}

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

export const templateInputSchema = z
  .object({
    kind: z.enum(TEMPLATE_KINDS, { error: 'kind must be "initial" or "reminder".' }),
    channel: z.enum(TEMPLATE_CHANNELS, { error: 'channel must be "email", "sms" or "whatsapp".' }),
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
    if (t.channel === 'email' && !t.subject) ctx.addIssue({ code: 'custom', path: ['subject'], message: 'Enter a subject for the email.' });
    if (t.channel !== 'email' && t.body.length > 640) ctx.addIssue({ code: 'custom', path: ['body'], message: 'Keep text messages under 640 characters (4 SMS).' });
  });
export type TemplateInput = z.infer<typeof templateInputSchema>;

export function createTemplateService({ db, clock }: { db: Db; clock: Clock }) {
  const service = {
    /** Every (kind, channel) template of a merchant: theirs where saved, else the default. */
    async all(merchantKey: number): Promise<MessageTemplate[]> {
      const rows = (await db('message_templates').where({ merchant_id: merchantKey })) as any[];
      return TEMPLATE_KINDS.flatMap((kind) =>
        TEMPLATE_CHANNELS.map((channel) => {
          const r = rows.find((x) => x.kind === kind && x.channel === channel);
          return r ? { kind, channel, subject: channel === 'email' ? r.subject : null, body: r.body, custom: true } : defaultTemplate(kind, channel);
        }),
      );
    },

    /** Templates of many merchants at once, keyed `${merchantKey}:${kind}:${channel}` (only saved ones). */
    async savedFor(merchantKeys: number[]): Promise<Map<string, MessageTemplate>> {
      const out = new Map<string, MessageTemplate>();
      if (!merchantKeys.length) return out;
      const rows = (await db('message_templates').whereIn('merchant_id', [...new Set(merchantKeys)])) as any[];
      for (const r of rows) out.set(`${r.merchant_id}:${r.kind}:${r.channel}`, { kind: r.kind, channel: r.channel, subject: r.subject, body: r.body, custom: true });
      return out;
    },

    async get(merchantKey: number, kind: TemplateKind, channel: TemplateChannel): Promise<MessageTemplate> {
      return (await service.all(merchantKey)).find((t) => t.kind === kind && t.channel === channel)!;
    },

    /** Validates (422 by field) and saves a merchant's template. */
    parse(raw: unknown): TemplateInput {
      return parseBody(templateInputSchema, raw);
    },

    async save(merchantKey: number, raw: unknown): Promise<MessageTemplate> {
      const t = service.parse(raw);
      const row = { merchant_id: merchantKey, kind: t.kind, channel: t.channel, subject: t.channel === 'email' ? t.subject ?? null : null, body: t.body, updated_at: clock.now() };
      await db('message_templates').insert(row).onConflict(['merchant_id', 'kind', 'channel']).merge(['subject', 'body', 'updated_at']);
      return service.get(merchantKey, t.kind, t.channel);
    },

    /** Back to the default. */
    async reset(merchantKey: number, kind: string, channel: string): Promise<void> {
      if (!(TEMPLATE_KINDS as readonly string[]).includes(kind) || !(TEMPLATE_CHANNELS as readonly string[]).includes(channel)) {
        throw new ValidationError([{ field: 'kind', code: 'invalid_template', message: 'No such template.' }]);
      }
      await db('message_templates').where({ merchant_id: merchantKey, kind, channel }).del();
    },
  };
  return service;
}

export type TemplateService = ReturnType<typeof createTemplateService>;
