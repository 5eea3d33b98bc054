/**
 * A separate worker process for the job tests: `node --import tsx jobs-worker.ts`. It builds a
 * runtime on the test's database (no migrations, no plugins, no Redis) and then, by JOBS_WORKER_MODE:
 * - `crash`: claims one job of JOBS_WORKER_KIND, starts its handler (which never finishes), reports
 *   `started` and waits to be SIGKILLed mid-run;
 * - `drain`: reports `ready`, waits for `go`, drains every job of the kind and reports the ids it ran.
 *
 * Env: JOBS_WORKER_CONFIG (the test's Config as JSON), JOBS_WORKER_NOW (the test clock's time, so
 * leases and due times are on the test's timeline), JOBS_WORKER_KIND, JOBS_WORKER_LEASE_MS,
 * JOBS_WORKER_CONCURRENCY.
 */
import type { Config } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createLogger } from '../../src/core/log.ts';

export type WorkerMode = 'crash' | 'drain';

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'started'; jobId: number; attempts: number }
  | { type: 'nothing-to-claim' }
  | { type: 'drained'; ids: number[] };

export type ParentMessage = { type: 'go' };

function send(msg: WorkerMessage): void {
  process.send?.(msg);
}

const env = process.env;
const mode = env.JOBS_WORKER_MODE as WorkerMode;
const kind = env.JOBS_WORKER_KIND!;
const config: Config = { ...JSON.parse(env.JOBS_WORKER_CONFIG!), redisUrl: null };
const rt = await createRuntime(config, {
  clock: new ManualClock(env.JOBS_WORKER_NOW!),
  log: createLogger('silent'),
  migrate: false,
  pluginSources: [],
  jobOptions: {
    leaseMs: Number(env.JOBS_WORKER_LEASE_MS || 60_000),
    concurrency: Number(env.JOBS_WORKER_CONCURRENCY || 4),
    workerId: `${mode}-${process.pid}`,
  },
});

if (mode === 'crash') {
  rt.jobs.define(kind, async (_payload, job) => {
    send({ type: 'started', jobId: job.id, attempts: job.attempts });
    await new Promise(() => {}); // mid-run forever: only SIGKILL ends this process
  });
  const [job] = await rt.jobs.claim(1);
  if (!job) {
    send({ type: 'nothing-to-claim' });
    await rt.close();
    process.exit(1);
  }
  void rt.jobs.execute(job);
} else {
  const ran: number[] = [];
  rt.jobs.define(kind, async (_payload, job) => {
    ran.push(job.id);
    await new Promise((r) => setImmediate(r));
  });
  process.once('message', async (msg: ParentMessage) => {
    if (msg.type !== 'go') return;
    await rt.jobs.drain();
    send({ type: 'drained', ids: ran });
    await rt.close();
    process.disconnect?.();
  });
  send({ type: 'ready' });
}
