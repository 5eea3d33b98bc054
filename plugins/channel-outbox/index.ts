// channel-outbox: stores outgoing messages instead of sending them. It serves email, sms and whatsapp
// as a fallback, so a fresh install "sends" somewhere visible (the Outbox page) until a real channel
// plugin is configured; a real channel for the same id takes over.
import { fileURLToPath } from 'node:url';
import { definePlugin, type Channel, type OutgoingMessage, z } from 'paylink/plugin-api';

export interface OutboxMessage extends Record<string, unknown> {
  channel: string;
  to: string;
  subject: string | null;
  text: string;
  /** Only in records kept before 2026-12: the Outbox shows a message's subject and text (below). */
  html?: string | null;
  messageId: string;
}

export default definePlugin({
  id: 'channel-outbox',
  version: '1.0.0',
  apiVersion: 1,
  description: 'Keeps outgoing email, SMS and WhatsApp messages in an Outbox instead of sending them. The default until a real channel is configured.',
  config: z.object({}).loose(),
  viewsDir: fileURLToPath(new URL('./views', import.meta.url)),
  register(api) {
    // The Outbox shows a message's subject and text; its HTML version (an email's, ~2 KB of fixed
    // markup around the same words) is not kept: nothing shows it, and it was most of each record's
    // bytes — with 100,000 reminders, most of what the database wrote.
    const recordOf = (id: string, message: OutgoingMessage) => ({
      merchantId: message.merchant.id,
      data: { channel: id, to: message.to, subject: message.subject ?? null, text: message.text, messageId: message.id } as OutboxMessage,
    });
    const channel = (id: string, label: string, address: Channel['address']): Channel => ({
      id,
      label,
      address,
      fallback: true,
      // Nothing leaves the server: the dashboard says "Kept in the Outbox", not "Sent".
      keepsOnly: true,
      async send(message: OutgoingMessage) {
        const record = await api.store.insert<OutboxMessage>('messages', recordOf(id, message));
        api.log.info('message kept in outbox', { channel: id, to: message.to, id: record.id });
        return { providerMessageId: record.id, kept: true };
      },
      // A batch of reminders is one write, not one per message.
      async sendMany(messages: OutgoingMessage[]) {
        const records = await api.store.insertMany<OutboxMessage>('messages', messages.map((m) => recordOf(id, m)));
        api.log.info('messages kept in outbox', { channel: id, count: records.length });
        return records.map((r) => ({ providerMessageId: r.id, kept: true }));
      },
    });
    api.channels.register(channel('email', 'Email', 'email'));
    api.channels.register(channel('sms', 'SMS', 'phone'));
    api.channels.register(channel('whatsapp', 'WhatsApp', 'phone'));

    api.dashboard.page({
      path: '/',
      title: 'Outbox',
      nav: { label: 'Outbox' },
      async render({ merchant, query }) {
        const messages = await api.store.list<OutboxMessage>('messages', { merchantId: merchant.id, limit: 50, beforeId: query.before });
        return api.views.render('outbox', { messages, merchant, next: messages.length === 50 ? messages[messages.length - 1].id : null });
      },
    });
  },
});
