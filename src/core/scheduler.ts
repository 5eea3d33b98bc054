// node-cron only enqueues: each tick adds a job keyed by its time slot, so with N processes the
// sweep still runs once per slot, through the job queue (claimed, retried, observable).
import cron, { type ScheduledTask } from 'node-cron';
import type { Db } from './db.ts';
import type { Clock } from './clock.ts';
import type { Logger } from './log.ts';
import type { JobQueue } from './jobs.ts';

export interface Sweep {
  /** Cron expression, e.g. '*\/5 * * * *'. */
  cron: string;
  /** Job kind to enqueue; define its handler on the queue. */
  kind: string;
}

export class Scheduler {
  private tasks: ScheduledTask[] = [];
  constructor(private readonly deps: { db: Db; clock: Clock; jobs: JobQueue; log: Logger }) {}

  /** Enqueues `kind` for the current minute; a second process doing the same adds nothing. */
  async tick(kind: string): Promise<void> {
    const slot = Math.floor(this.deps.clock.now().getTime() / 60_000);
    await this.deps.jobs.enqueue(this.deps.db, kind, {}, { uniqueKey: `sweep:${kind}:${slot}`, maxAttempts: 3 });
  }

  start(sweeps: Sweep[]): void {
    for (const s of sweeps) {
      if (!cron.validate(s.cron)) throw new Error(`invalid cron expression for ${s.kind}: ${s.cron}`);
      this.tasks.push(
        cron.schedule(s.cron, () => {
          this.tick(s.kind).catch((err) => this.deps.log.error('could not enqueue sweep', { kind: s.kind, error: err }));
        }),
      );
    }
  }

  async stop(): Promise<void> {
    for (const t of this.tasks) await t.destroy();
    this.tasks = [];
  }
}
