// action-customer-tags: when the customer a link was sent to pays, apply one customer tag and/or
// remove one (e.g. apply "Paid 2025", remove "Owes membership"). Runs once per payment from the
// payment.succeeded event; applying a tag the customer has, or removing one they lack, is a no-op,
// so a retried run changes nothing twice.
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { definePlugin } from '../../src/plugin-api.ts';

const tagId = z.string().regex(/^tag_[A-Za-z0-9]+$/, 'Choose one of your customer tags.').nullable().default(null);

export const customerTagSettings = z
  .object({ apply: tagId, remove: tagId })
  .refine((s) => s.apply !== null || s.remove !== null, 'Choose a tag to apply or to remove.')
  .refine((s) => s.apply === null || s.apply !== s.remove, { path: ['remove'], message: 'A tag cannot be both applied and removed.' });
export type CustomerTagSettings = z.infer<typeof customerTagSettings>;

export default definePlugin({
  id: 'action-customer-tags',
  version: '1.0.0',
  apiVersion: 1,
  description: 'After a payment, applies a customer tag to the customer who paid and/or removes one.',
  config: z.object({}).loose(),
  viewsDir: fileURLToPath(new URL('./views', import.meta.url)),
  register(api) {
    api.actions.register<CustomerTagSettings>({
      id: 'customer-tags',
      label: 'Update customer tags',
      settings: customerTagSettings,
      formFragment: 'form',
      async run({ event, settings, merchant, customer }) {
        if (!customer) {
          api.log.info('payment has no customer; no tags to change', { event: event.id });
          return;
        }
        const { customers } = api.services;
        if (settings.apply) await customers.applyTag(merchant.id, customer.id, settings.apply);
        if (settings.remove) await customers.removeTag(merchant.id, customer.id, settings.remove);
        api.log.info('customer tags updated after payment', { event: event.id, customer: customer.id, applied: settings.apply, removed: settings.remove });
      },
    });
  },
});
