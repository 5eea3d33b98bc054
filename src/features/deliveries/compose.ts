/**
 * Turns a template and a recipient into the message a channel sends: subject and text for every
 * channel, plus the HTML email (views/emails/message.eta) in the merchant's name and colour.
 */
import type { Eta } from 'eta';
import { formatMoney } from '../../core/money.ts';
import { textOn } from '../../core/color.ts';
import { fill, PLACEHOLDERS, type MessageTemplate, type Placeholder, type TemplateValues } from './templates.ts';

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
  /** A paragraph after the template's text that no template controls (a subscription's receipt), or null. */
  note?: string | null;
}

export interface ComposedMessage {
  subject: string | null;
  text: string;
  html: string | null;
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

type Etas = { html: Eta; text: Eta };

/** What the email views get: the text with its values in, and the merchant's look. */
function viewData(template: MessageTemplate, brandColor: string, subject: string, body: string, values: Pick<TemplateValues, 'business' | 'amount' | 'url'>, note: string | null = null) {
  return {
    subject,
    body,
    note,
    paragraphs: body.split(/\n\s*\n/).map((p) => p.split('\n')),
    business: values.business,
    brand: /^#[0-9a-f]{6}$/i.test(brandColor) ? brandColor : '#2563eb',
    brandText: textOn(brandColor),
    amount: values.amount,
    url: values.url,
    // The button: pay a link, or (a receipt) open the receipt page.
    action: template.kind === 'receipt' ? 'View your receipt' : `Pay ${values.amount}`,
  };
}

export function compose(eta: Etas, input: ComposeInput): ComposedMessage {
  const values = templateValues(input);
  const body = fill(input.template.body, values);
  if (input.template.style !== 'email') return { subject: null, text: textMessage(input.note ? `${body}\n\n${input.note}` : body, input.url), html: null };
  const subject = fill(input.template.subject ?? '{{business}}', values, { oneLine: true });
  const data = viewData(input.template, input.brandColor, subject, body, values, input.note ?? null);
  return { subject, text: eta.text.render('emails/message-text', data), html: eta.html.render('emails/message', data) };
}

/** A text message is useless without its link: add it when the template leaves it out. */
const textMessage = (body: string, url: string) => (body.includes(url) ? body : `${body} ${url}`);

// ---- Many messages from one template -----------------------------------------------------------
// Rendering the email views is most of composing a message. A batch renders them once per template
// (and brand colour) with a marker in place of each value, splits the result at the markers, and
// then fills each message's values in — escaped where the view escaped the marker. The result is
// byte for byte what compose() makes (test/message-compose.test.ts); a message whose values could
// change the text's shape (a line break, or a value with no visible character, which could join or
// split paragraphs) is composed the ordinary way.

const PLACEHOLDER_NAMES = Object.keys(PLACEHOLDERS) as Placeholder[];
/** Private-use characters around a slot number; `&` inside shows whether the view escaped it. */
const OPEN = '\uE000';
const CLOSE = '\uE001';
const marker = (slot: number) => `${OPEN}&${slot}${CLOSE}`;
const MARKED = /\uE000(&amp;|&)(\d+)\uE001/g;
/** Slot of the whole subject (after the placeholders' slots). */
const SUBJECT_SLOT = PLACEHOLDER_NAMES.length;

/** A rendered view split at its markers: text, slot, text, slot, …, text. */
interface Frame {
  texts: string[];
  slots: { slot: number; escaped: boolean }[];
}

function frameOf(rendered: string): Frame {
  const texts: string[] = [];
  const slots: Frame['slots'] = [];
  let at = 0;
  for (const m of rendered.matchAll(MARKED)) {
    texts.push(rendered.slice(at, m.index));
    slots.push({ slot: Number(m[2]), escaped: m[1] === '&amp;' });
    at = m.index + m[0].length;
  }
  texts.push(rendered.slice(at));
  return { texts, slots };
}

function fillFrame(frame: Frame, raw: string[], escaped: string[]): string {
  let out = frame.texts[0];
  for (let i = 0; i < frame.slots.length; i++) {
    const s = frame.slots[i];
    out += (s.escaped ? escaped : raw)[s.slot] + frame.texts[i + 1];
  }
  return out;
}

/** Values that leave the body's paragraphs and lines where the template puts them. */
const shapeSafe = (v: string) => !v.includes('\n') && /\S/.test(v);

/**
 * A composer for a batch of messages: `compose` with each (template, brand colour) rendered once.
 * Make one per batch; it keeps every template it has seen.
 */
export function createComposer(eta: Etas): (input: ComposeInput) => ComposedMessage {
  const frames = new Map<string, { html: Frame; text: Frame } | null>();
  const escape = eta.html.config.escapeFunction;
  const framesFor = (template: MessageTemplate, brandColor: string) => {
    const key = `${template.kind}\u0000${template.subject ?? ''}\u0000${template.body}\u0000${brandColor}`;
    let f = frames.get(key);
    if (f !== undefined) return f;
    f = null;
    const text = `${template.subject ?? ''}${template.body}`;
    if (!text.includes(OPEN) && !text.includes(CLOSE)) {
      const markers = Object.fromEntries(PLACEHOLDER_NAMES.map((p, i) => [p, marker(i)])) as TemplateValues;
      const data = viewData(template, brandColor, marker(SUBJECT_SLOT), fill(template.body, markers), markers);
      f = { html: frameOf(eta.html.render('emails/message', data)), text: frameOf(eta.text.render('emails/message-text', data)) };
    }
    frames.set(key, f);
    return f;
  };
  return (input) => {
    // Text messages are cheap to compose; a note is one message's own (a receipt's), not the template's.
    if (input.template.style !== 'email' || input.note) return compose(eta, input);
    const values = templateValues(input);
    const frame = framesFor(input.template, input.brandColor);
    const raw = PLACEHOLDER_NAMES.map((p) => values[p]);
    if (!frame || !raw.every(shapeSafe)) return compose(eta, input);
    const subject = fill(input.template.subject ?? '{{business}}', values, { oneLine: true });
    raw.push(subject);
    const escaped = raw.map((v) => escape(v));
    return { subject, text: fillFrame(frame.text, raw, raw), html: fillFrame(frame.html, raw, escaped) };
  };
}
