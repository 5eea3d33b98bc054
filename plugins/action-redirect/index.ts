// action-redirect: after payment, send the customer to a URL the merchant chose (absolute http/https).
// Skeleton of the action contract; the smart-links feature wires it to the receipt flow.
import { z } from 'zod';
import { definePlugin } from '../../src/plugin-api.ts';

export const redirectSettings = z.object({
  url: z.url({ protocol: /^https?$/, error: 'Enter an absolute http:// or https:// URL.' }),
  target: z.enum(['same', 'new']).default('same'),
});

export default definePlugin({
  id: 'action-redirect',
  version: '0.1.0',
  apiVersion: 1,
  description: 'Redirects the customer to a URL of your choice after a successful payment.',
  config: z.object({}).loose(),
  register(api) {
    api.actions.register({
      id: 'redirect',
      label: 'Redirect to a URL',
      settings: redirectSettings,
      async run({ settings }) {
        return { redirect: settings.url };
      },
    });
  },
});
