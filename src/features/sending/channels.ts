/**
 * The channels a merchant can send a link through, and which of them can reach a given customer.
 * Email needs an email address, SMS and WhatsApp a phone number (always valid E.164 once stored).
 */
export const SEND_CHANNELS = ['email', 'sms', 'whatsapp'] as const;
export type SendChannel = (typeof SEND_CHANNELS)[number];

export const CHANNEL_LABELS: Record<SendChannel, string> = { email: 'Email', sms: 'SMS', whatsapp: 'WhatsApp' };

export interface ChannelOption {
  id: SendChannel;
  label: string;
  enabled: boolean;
  /** Why the channel cannot reach this customer. */
  reason: string | null;
}

export interface Reachable {
  name: string;
  email: string | null;
  phone: string | null;
}

/** The customer's address on a channel, or null. */
export function addressFor(customer: Reachable, channel: string): string | null {
  if (channel === 'email') return customer.email;
  if (channel === 'sms' || channel === 'whatsapp') return customer.phone;
  return null;
}

export function channelOptions(customer: Reachable): ChannelOption[] {
  return SEND_CHANNELS.map((id) => {
    const address = addressFor(customer, id);
    const reason = address ? null : id === 'email' ? 'No email address' : 'No phone number';
    return { id, label: CHANNEL_LABELS[id], enabled: reason === null, reason };
  });
}
