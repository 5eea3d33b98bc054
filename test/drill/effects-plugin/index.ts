// The fault drills' consumer: for every payment event it records that it ran (`runs`, one row per
// run) and applies its effect once, keyed by the event id (`effects`, insertOnce). A worker killed
// mid-run makes the queue run a handler again; the effect must still exist exactly once.
import { definePlugin } from '../../../src/plugin-api.ts';

export default definePlugin({
  id: 'drill-effects',
  version: '1.0.0',
  apiVersion: 1,
  description: 'Counts payment events (fault drills).',
  register(api) {
    for (const type of ['checkout.started', 'payment.authorized', 'payment.succeeded'] as const) {
      api.hooks.on(type, async (event) => {
        await api.store.insert('runs', { merchantId: null, data: { eventId: event.id } });
        // A little work between the run and its effect, so a SIGKILL can land in between.
        await new Promise((r) => setTimeout(r, 2));
        await api.store.insertOnce('effects', event.id, { merchantId: null, data: { type } });
      });
    }
  },
});
