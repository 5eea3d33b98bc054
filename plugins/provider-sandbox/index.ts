// provider-sandbox: a test payment provider with a hosted card page and the test cards of API.md.
// This is the skeleton of the contract; the smart-links feature completes the checkout flow.
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { definePlugin, ProviderError, type PaymentProvider } from '../../src/plugin-api.ts';

export const TEST_CARDS = {
  '4242424242424242': { outcome: 'authorized', message: null },
  '4000000000000002': { outcome: 'declined', message: 'Your card was declined. Try another card.' },
  '4000000000009995': { outcome: 'declined', message: 'Your card has insufficient funds.' },
} as const;

export function normaliseCardNumber(input: string): string {
  return input.replace(/[\s-]/g, '');
}

export default definePlugin({
  id: 'provider-sandbox',
  version: '0.1.0',
  apiVersion: 1,
  description: 'Test payments with test card numbers; no money moves.',
  config: z.object({}).loose(),
  viewsDir: fileURLToPath(new URL('./views', import.meta.url)),
  register(api) {
    const provider: PaymentProvider = {
      id: 'sandbox',
      name: 'Sandbox (test cards)',
      async start(session) {
        return { redirect: `${api.baseUrl}/p/provider-sandbox/pay/${encodeURIComponent(session.id)}` };
      },
      async capture() {},
      async void() {},
      async refund(_payment, amount) {
        if (!Number.isInteger(amount) || amount <= 0) throw new ProviderError('refund amount must be a positive integer', { retryable: false, code: 'invalid_amount' });
      },
    };
    api.providers.register(provider);

    api.routes.get('/cards', async (_req, res) => {
      res.type('html').send(await api.views.render('cards', { cards: Object.entries(TEST_CARDS) }));
    });
  },
});
