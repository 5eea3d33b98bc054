/**
 * An app process that only runs jobs, for test/webhooks-processes.test.ts: `node --import tsx
 * webhooks-worker.ts` builds a runtime on the test's database (no migrations, no plugins, no Redis),
 * starts the job worker and reports `ready`. The test SIGKILLs it part-way through.
 *
 * Env: WEBHOOKS_WORKER_CONFIG (the test's Config as JSON), WEBHOOKS_WORKER_NOW (its clock's time),
 * WEBHOOKS_WORKER_LEASE_MS.
 */
import type { Config } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createLogger } from '../../src/core/log.ts';

const env = process.env;
const config: Config = { ...JSON.parse(env.WEBHOOKS_WORKER_CONFIG!), redisUrl: null };
const rt = await createRuntime(config, {
  clock: new ManualClock(env.WEBHOOKS_WORKER_NOW!),
  log: createLogger('silent'),
  migrate: false,
  pluginSources: [],
  jobOptions: { leaseMs: Number(env.WEBHOOKS_WORKER_LEASE_MS || 60_000), pollMs: 50, concurrency: 4, workerId: `webhooks-${process.pid}` },
});
rt.jobs.start();
process.send?.({ type: 'ready' });
