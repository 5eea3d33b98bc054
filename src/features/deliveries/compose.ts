/**
 * Turns a template and a recipient into the message a channel sends: subject and text for every
 * channel, plus the HTML email (views/emails/message.eta) in the merchant's name and colour.
 */
import type { Eta } from 'eta';
import { formatMoney } from '../../core/money.ts';
import { fill, type MessageTemplate, type TemplateValues } from './templates.ts';

export interface ComposeInput {
  template: MessageTemplate;
  business: string;
  brandColor: string;
  customerName: string;
  linkName: string;
  amount: number | null;
  currency: string;
  url: string;
  reminderNumber: number;
}

export interface ComposedMessage {
  subject: string | null;
  text: string;
  html: string | null;
}

/** Black or white, whichever reads better on the brand colour. */
export function textOn(hex: string): string {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) return '#ffffff';
  const [r, g, b] = [m[1], m[2], m[3]].map((h) => parseInt(h, 16) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.4 ? '#111827' : '#ffffff';
}

export function templateValues(input: Omit<ComposeInput, 'template' | 'brandColor'>): TemplateValues {
  const name = input.customerName.trim();
  return {
    first_name: name.split(/\s+/)[0] || name,
    name,
    business: input.business,
    link_name: input.linkName,
    amount: input.amount === null ? '' : formatMoney(input.amount, input.currency),
    url: input.url,
    reminder_number: String(input.reminderNumber),
  };
}

export function compose(eta: { html: Eta; text: Eta }, input: ComposeInput): ComposedMessage {
  const values = templateValues(input);
  const body = fill(input.template.body, values);
  if (input.template.style !== 'email') {
    // A text message is useless without its link: add it when the template leaves it out.
    return { subject: null, text: body.includes(input.url) ? body : `${body} ${input.url}`, html: null };
  }
  const subject = fill(input.template.subject ?? '{{business}}', values, { oneLine: true });
  const data = {
    subject,
    body,
    paragraphs: body.split(/\n\s*\n/).map((p) => p.split('\n')),
    business: input.business,
    brand: /^#[0-9a-f]{6}$/i.test(input.brandColor) ? input.brandColor : '#2563eb',
    brandText: textOn(input.brandColor),
    amount: values.amount,
    url: input.url,
    // The button: pay a link, or (a receipt) open the receipt page.
    action: input.template.kind === 'receipt' ? 'View your receipt' : `Pay ${values.amount}`,
  };
  return { subject, text: eta.text.render('emails/message-text', data), html: eta.html.render('emails/message', data) };
}
