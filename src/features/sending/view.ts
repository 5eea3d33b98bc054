/**
 * What the link page shows of sending: the Send form's values and how they become a send, the
 * delivery card's rows, the reminders card's plans, and the Reminders tab (sent and upcoming).
 */
import { ValidationError, type FieldError } from '../../core/errors.ts';
import { dateTimeIn, timeAgo } from '../../core/time.ts';
import type { Badge } from '../../web/view.ts';
import type { Delivery } from '../deliveries/index.ts';
import { deliveryRow } from '../deliveries/index.ts';
import { upcoming, type ReminderPlan } from '../reminders/index.ts';
import { FREQUENCIES, FREQUENCY_LABELS, REMINDERS_MAX, type Frequency } from '../reminders/index.ts';
import type { ChannelDirectory, ChannelInfo, ChannelOption, Reachable } from '../deliveries/index.ts';
import type { SendResult } from './service.ts';

/** Messages on the link page's delivery card; the rest are on /app/links/:id/deliveries. */
export const CARD_DELIVERIES = 10;
/** Messages per page of /app/links/:id/deliveries. */
export const DELIVERIES_PER_PAGE = 25;
/** Customers offered at a time in the Send form (the search narrows them). */
export const PICKER_SIZE = 8;
/** Rows per list of the Reminders tab. */
export const TAB_ROWS = 20;

// ---- The Send form ----------------------------------------------------------------------------

/** The Send form as typed: strings, so a 422 gives back exactly what was chosen. */
export interface SendFormValues {
  q: string;
  customer_ids: string[];
  customer_tag: string;
  channels: string[];
  reminder_frequency: string;
  reminder_max: string;
}

export const DEFAULT_REMINDER_MAX = '3';

export const emptySendValues = (): SendFormValues => ({ q: '', customer_ids: [], customer_tag: '', channels: ['email'], reminder_frequency: '', reminder_max: DEFAULT_REMINDER_MAX });

const text = (v: unknown): string => (typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : '');
const list = (v: unknown): string[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string' && x.trim() !== '').map((x) => x.trim());

/** Reads the form (a POST body, or the query of the picker's GETs). `fresh` = nothing chosen yet: the default channel. */
export function readSendValues(source: Record<string, unknown>, fresh = false): SendFormValues {
  return {
    q: text(source.q).trim().slice(0, 120),
    customer_ids: [...new Set(list(source.customer_ids))].slice(0, 500),
    customer_tag: text(source.customer_tag).trim(),
    channels: fresh && source.channels === undefined ? ['email'] : list(source.channels),
    reminder_frequency: text(source.reminder_frequency),
    reminder_max: text(source.reminder_max) || DEFAULT_REMINDER_MAX,
  };
}

/** The form → the send object the sending service validates: one customer, several, or a tag. */
export function sendInput(v: SendFormValues): Record<string, unknown> {
  const raw: Record<string, unknown> = { channels: v.channels };
  if (v.customer_ids.length === 1) raw.customer_id = v.customer_ids[0];
  else if (v.customer_ids.length > 1) raw.customer_ids = v.customer_ids;
  if (v.customer_tag) raw.customer_tag = v.customer_tag;
  if (v.reminder_frequency) {
    const max = v.reminder_max.trim();
    raw.reminders = { frequency: v.reminder_frequency, max: /^\d{1,4}$/.test(max) ? Number(max) : max };
  }
  return raw;
}

/** Where each of the sending service's fields is shown on the form. */
const FORM_FIELD: Record<string, string> = {
  'send.customer_id': 'customers',
  'send.customer_ids': 'customers',
  'send.customer_tag': 'customer_tag',
  'send.channels': 'channels',
  'send.reminders': 'reminder_frequency',
  'send.reminders.frequency': 'reminder_frequency',
  'send.reminders.max': 'reminder_max',
};

/**
 * A send's validation errors as messages by the form's fields (several messages for one field, such
 * as two channels that cannot reach the customer, are shown together); null if it is not a form error.
 */
export function sendFormErrors(err: unknown): Record<string, string> | null {
  if (!(err instanceof ValidationError)) return null;
  const out: Record<string, string> = {};
  for (const e of err.errors as FieldError[]) {
    const field = FORM_FIELD[e.field] ?? (e.field.startsWith('send.channels') ? 'channels' : 'send');
    out[field] = out[field] ? `${out[field]} ${e.message}` : e.message;
  }
  return out;
}

/**
 * "Sent to 3 customers." / "Sent to Jane Doe." plus who was skipped and why — or, on channels that
 * only keep messages (no email server or SMS provider configured), "Kept in the Outbox (no email
 * server configured): nothing went to Jane Doe." with where to read how to configure one. `channels`
 * are the channels chosen, as the directory describes them.
 */
export function sentNotice(result: SendResult, single: string | null, channels: Pick<ChannelInfo, 'label' | 'keeps'>[] = []): { type: 'success' | 'info'; text: string; help?: { href: string; text: string } } {
  const who = single ?? `${result.recipients} customer${result.recipients === 1 ? '' : 's'}`;
  const kept = channels.filter((c) => c.keeps);
  const reasons = [...new Set(kept.map((c) => c.keeps!.reason))].join(', ');
  let s: string;
  if (kept.length && kept.length === channels.length) {
    s = `Kept in the Outbox (${reasons}): nothing went to ${who}`;
    if (result.plans.length) s += `, and their reminders will stay there too`;
  } else {
    s = `Sent to ${who}`;
    if (kept.length) s += ` by ${channels.filter((c) => !c.keeps).map((c) => c.label).join(' and ')}`;
    if (result.plans.length) s += `, with reminders until they pay`;
    if (kept.length) s += `. ${kept.map((c) => c.label).join(' and ')}: kept in the Outbox (${reasons})`;
  }
  s += '.';
  if (result.skipped.length) {
    const names = result.skipped.slice(0, 3).map((k) => `${k.name} (${k.reason.toLowerCase()})`);
    const more = result.skipped.length - names.length;
    s += ` ${result.skipped.length} skipped: ${names.join(', ')}${more > 0 ? ` and ${more} more` : ''}.`;
  }
  return kept.length ? { type: kept.length === channels.length ? 'info' : 'success', text: s, help: kept[0].keeps!.help } : { type: 'success', text: s };
}

/**
 * The channel checkboxes: for one chosen customer, each channel they cannot be reached on is
 * disabled with its reason; for several customers or a tag all are offered (who lacks an address
 * for one is skipped on it).
 */
export function channelChoices(channels: ChannelDirectory, single: Reachable | null, checked: string[]): (ChannelOption & { checked: boolean })[] {
  const options: ChannelOption[] = single ? channels.options(single) : channels.list().map((c) => ({ id: c.id, label: c.label, enabled: true, reason: null, address: null }));
  return options.map((o) => ({ ...o, checked: o.enabled && checked.includes(o.id) }));
}

export const frequencyOptions = () => FREQUENCIES.map((f) => ({ value: f, label: FREQUENCY_LABELS[f] }));
export { REMINDERS_MAX };

// ---- Delivery card ----------------------------------------------------------------------------

export type DeliveryRow = ReturnType<typeof deliveryRow> & { resendable: boolean; customerId: string | null; customerName: string | null; channelId: string };

export function deliveryRows(items: Delivery[], now: Date, timeZone: string, channels: ChannelDirectory): DeliveryRow[] {
  return items.map((d) => {
    const row = deliveryRow(d, now, timeZone, channels);
    return {
      ...row,
      kind: d.kind === 'initial' ? 'First send' : row.kind,
      channelId: d.channel,
      customerId: d.customerId,
      customerName: d.customerName,
      resendable: d.status === 'sent' || d.status === 'failed',
    };
  });
}

// ---- Reminders card ---------------------------------------------------------------------------

const STOPPED: Record<string, string> = {
  paid: 'Stopped — paid',
  link_closed: 'Stopped — link closed',
  customer_deleted: 'Stopped — customer deleted',
  cancelled: 'Stopped by you',
  replaced: 'Replaced by a newer send',
};

export function planBadge(plan: Pick<ReminderPlan, 'state' | 'stopReason'>): Badge {
  if (plan.state === 'active') return { label: 'Active', tone: 'green' };
  if (plan.state === 'completed') return { label: 'Completed', tone: 'grey' };
  return { label: STOPPED[plan.stopReason ?? 'cancelled'] ?? 'Stopped', tone: plan.stopReason === 'paid' ? 'green' : 'grey' };
}

const channelNames = (directory: ChannelDirectory, ids: string[]) => ids.map((c) => directory.label(c)).join(' + ');

export interface Moment {
  iso: string;
  relative: string;
  absolute: string;
}
const momentOf = (now: Date, timeZone: string) => (d: Date): Moment => ({ iso: d.toISOString(), relative: timeAgo(d, now), absolute: dateTimeIn(d, timeZone) });

export function planRows(plans: ReminderPlan[], now: Date, timeZone: string, channels: ChannelDirectory) {
  const moment = momentOf(now, timeZone);
  return plans.map((p) => ({
    id: p.id,
    customerId: p.customerId,
    customerName: p.customerName,
    channels: channelNames(channels, p.channels),
    frequency: FREQUENCY_LABELS[p.frequency as Frequency] ?? p.frequency,
    progress: `${p.sent} of ${p.max} sent`,
    next: p.state === 'active' && p.nextAt ? moment(p.nextAt) : null,
    status: planBadge(p),
    active: p.state === 'active',
  }));
}

// ---- Reminders tab ----------------------------------------------------------------------------

/**
 * The Reminders tab: reminders sent (one row per reminder, its channels' statuses side by side),
 * newest first, and the ones still to come, soonest first.
 */
export function remindersTab(plans: ReminderPlan[], sent: Delivery[], now: Date, timeZone: string, channels: ChannelDirectory) {
  const moment = momentOf(now, timeZone);
  const byKey = new Map(plans.map((p) => [p.key, p]));
  const groups = new Map<string, { plan: ReminderPlan; n: number; at: Date; channels: { label: string; status: Badge; error: string | null }[] }>();
  for (const d of sent) {
    const plan = d.planKey === null ? undefined : byKey.get(d.planKey);
    if (!plan) continue;
    const key = `${plan.key}:${d.seq}`;
    const row = deliveryRow(d, now, timeZone, channels);
    const at = d.sentAt ?? d.createdAt;
    const g = groups.get(key) ?? { plan, n: d.seq, at, channels: [] };
    if (at > g.at) g.at = at;
    g.channels.push({ label: row.channel, status: row.status, error: row.error });
    groups.set(key, g);
  }
  const sentRows = [...groups.values()]
    .sort((a, b) => b.at.getTime() - a.at.getTime() || b.n - a.n)
    .map((g) => ({ planId: g.plan.id, customerName: g.plan.customerName, label: `Reminder ${g.n} of ${g.plan.max}`, at: moment(g.at), channels: g.channels }));
  const upcomingRows = plans
    .flatMap((p) => upcoming(p, timeZone).map((u) => ({ planId: p.id, customerName: p.customerName, label: `Reminder ${u.n} of ${p.max}`, at: u.at, channels: channelNames(channels, p.channels) })))
    .sort((a, b) => a.at.getTime() - b.at.getTime())
    .map((u) => ({ ...u, at: moment(u.at) }));
  return {
    plans: plans.length,
    sent: sentRows.slice(0, TAB_ROWS),
    sentMore: Math.max(0, sentRows.length - TAB_ROWS),
    upcoming: upcomingRows.slice(0, TAB_ROWS),
    upcomingMore: Math.max(0, upcomingRows.length - TAB_ROWS),
  };
}
export type RemindersTab = ReturnType<typeof remindersTab>;
