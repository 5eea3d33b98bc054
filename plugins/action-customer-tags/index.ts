// action-customer-tags: when the customer a link was sent to pays, apply one customer tag and/or
// remove one (e.g. apply "Paid 2025", remove "Owes membership"). Runs once per payment from the
// payment.succeeded event; applying a tag the customer has, or removing one they lack, is a no-op,
// so a retried run changes nothing twice. The API's `after_payment.apply_customer_tag` /
// `remove_customer_tag` are this action's shorthand.
import { fileURLToPath } from 'node:url';
import { definePlugin, z } from 'paylink/plugin-api';

/** A tag id as typed or posted; empty means none. */
const tagId = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim() || null : v),
  z.string({ error: 'Choose one of your customer tags.' }).regex(/^tag_[A-Za-z0-9]+$/, 'Choose one of your customer tags.').nullable().default(null),
);

export const customerTagSettings = z
  .object({ apply: tagId, remove: tagId })
  .refine((s) => s.apply !== null || s.remove !== null, 'Choose a tag to apply or to remove.')
  .refine((s) => s.apply === null || s.apply !== s.remove, { path: ['remove'], message: 'A tag cannot be both applied and removed.' });
export type CustomerTagSettings = z.infer<typeof customerTagSettings>;

export default definePlugin({
  id: 'action-customer-tags',
  version: '1.1.0',
  apiVersion: 1,
  description: 'After a payment, applies a customer tag to the customer who paid and/or removes one.',
  config: z.object({}).loose(),
  viewsDir: fileURLToPath(new URL('./views', import.meta.url)),
  register(api) {
    const { customers } = api.services;
    api.actions.register<CustomerTagSettings>({
      id: 'customer-tags',
      label: 'Update customer tags',
      description: 'When the customer this link is sent to pays, apply a tag to them and/or remove one.',
      settings: customerTagSettings,
      formFragment: 'form',
      requiresCustomer: true,
      apiShorthand: { apply_customer_tag: 'apply', remove_customer_tag: 'remove' },
      async check(settings, { merchant }) {
        const mine = new Set((await customers.tags(merchant.id)).map((t) => t.id));
        return (['apply', 'remove'] as const)
          .filter((field) => settings[field] !== null && !mine.has(settings[field]!))
          .map((field) => ({ field, code: 'unknown_tag', message: 'Choose one of your customer tags.' }));
      },
      async formData({ merchant }) {
        return { tags: await customers.tags(merchant.id) };
      },
      async run({ event, settings, merchant, customer }) {
        if (!customer) {
          api.log.info('payment has no customer; no tags to change', { event: event.id });
          return;
        }
        if (settings.apply) await customers.applyTag(merchant.id, customer.id, settings.apply);
        if (settings.remove) await customers.removeTag(merchant.id, customer.id, settings.remove);
        api.log.info('customer tags updated after payment', { event: event.id, customer: customer.id, applied: settings.apply, removed: settings.remove });
      },
    });
  },
});
