/**
 * A Paylink job worker for the worker-kill drill: a runtime on the drill's database (config as JSON in
 * DRILL_CONFIG) running the job queue and the cron sweeps until it is killed. Leases are short
 * (DRILL_LEASE_MS) so a killed worker's jobs come back soon.
 */
import type { Config } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';

const config: Config = JSON.parse(process.env.DRILL_CONFIG!);
const rt = await createRuntime(config, { migrate: false, jobOptions: { leaseMs: Number(process.env.DRILL_LEASE_MS || 5_000) } });
rt.startBackground();
process.send?.('ready');
