// Seeds the bench database (from the same environment the server gets): one merchant, one active
// amount link. Prints {"handle","path"} as JSON on stdout.
import { loadConfig } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';

const config = loadConfig(process.env);
const rt = await createRuntime(config, { migrate: true });
try {
  const handle = process.env.BENCH_HANDLE ?? 'bench-shop';
  const { merchant } = await rt.services.merchants.signUp({ name: 'Bench Bakery', handle, email: `${handle}@example.test`, password: 'bench password 123' });
  // With the Stripe plugin configured install-wide (BENCH_STRIPE), the merchant takes payments through
  // Stripe instead of the sandbox, as a live shop would.
  // BENCH_SANDBOX_ONLY=1: a merchant on the sandbox alone in the same database (the Stripe comparison).
  if (rt.registries.providers.get('stripe') && process.env.PAYLINK_PLUGIN_PROVIDER_STRIPE && process.env.BENCH_SANDBOX_ONLY !== '1') {
    await rt.services.providers.update(merchant.key, 'stripe', { enabled: true });
    await rt.services.providers.update(merchant.key, 'sandbox', { enabled: false });
  }
  const link = await rt.services.links.create(merchant, { type: 'amount', name: 'Summer Sale', amount: 1250, description: 'Two loaves and a cake, delivered Saturday.' });
  process.stdout.write(JSON.stringify({ handle: merchant.handle, path: link.path }) + '\n');
} finally {
  await rt.close();
}
