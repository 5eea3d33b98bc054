/** Deliveries as the dashboard shows them (a customer's messages, a link's messages card). */
import { timeAgo, dateTimeIn } from '../../core/time.ts';
import type { Delivery } from './service.ts';
import { keptNotice, type ChannelDirectory, type KeptNotice } from './channels.ts';
import type { Badge } from '../../web/view.ts';
import { formatPhone } from '../../web/view.ts';

const STATUS: Record<Delivery['status'], Badge> = {
  queued: { label: 'Queued', tone: 'amber' },
  // Being handed to the provider right now: still "on its way" to the merchant.
  sending: { label: 'Queued', tone: 'amber' },
  sent: { label: 'Sent', tone: 'green' },
  failed: { label: 'Failed', tone: 'red' },
  cancelled: { label: 'Cancelled', tone: 'grey' },
};

/** A delivery's badge: "Kept in the Outbox" for one sent to a channel that only keeps messages. */
export function deliveryStatusBadge(status: Delivery['status'], kept = false): Badge {
  if (status === 'sent' && kept) return { label: 'Kept in the Outbox', tone: 'amber' };
  return STATUS[status] ?? { label: status, tone: 'grey' };
}

/** What was missing when a delivery was kept: the channel's reason now, else the address kind's. */
function keptNoteFor(d: Delivery, channels: Pick<ChannelDirectory, 'get' | 'label'>): KeptNotice {
  const now = channels.get(d.channel)?.keeps;
  if (now) return now;
  // A real channel serves the id today: the message still stayed in the Outbox back then.
  const info = channels.get(d.channel);
  return keptNotice(info?.addressKind === 'email' ? 'no email server was configured' : `no ${channels.label(d.channel)} provider was configured`, '/app/plugins');
}

export function deliveryKindText(d: Pick<Delivery, 'kind' | 'seq'>): string {
  if (d.kind === 'initial') return 'Payment link';
  if (d.kind === 'reminder') return d.seq ? `Reminder ${d.seq}` : 'Reminder';
  if (d.kind === 'expiry') return 'Expiry notice';
  if (d.kind === 'receipt') return 'Receipt';
  return d.kind;
}

/** A delivery as a row of a messages table: sent time (or queued time), badges, the address. */
export function deliveryRow(d: Delivery, now: Date, timeZone: string, channels: Pick<ChannelDirectory, 'get' | 'label'>) {
  const at = d.sentAt ?? d.createdAt;
  const phone = channels.get(d.channel)?.addressKind === 'phone' || d.channel === 'sms' || d.channel === 'whatsapp';
  return {
    id: d.id,
    linkId: d.linkId,
    linkName: d.linkName,
    channel: channels.label(d.channel),
    kind: deliveryKindText(d),
    to: phone ? formatPhone(d.to) : d.to,
    status: deliveryStatusBadge(d.status, d.kept),
    error: d.status === 'failed' || d.status === 'cancelled' || d.status === 'queued' ? d.error : null,
    /** Why a message sits in the Outbox ("no email server configured") and where to read how to send for real. */
    kept: d.status === 'sent' && d.kept ? keptNoteFor(d, channels) : null,
    attempts: d.attempts,
    at: { iso: at.toISOString(), relative: timeAgo(at, now), absolute: dateTimeIn(at, timeZone), sent: d.sentAt !== null },
  };
}
