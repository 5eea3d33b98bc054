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

  /**
   * Enqueues `kind` for the minute of `at` (default: now); a second process doing the same adds
   * nothing.
   */
  async tick(kind: string, at: Date = this.deps.clock.now()): Promise<void> {
    const slot = Math.floor(at.getTime() / 60_000);
    await this.deps.jobs.enqueue(this.deps.db, kind, {}, { uniqueKey: `sweep:${kind}:${slot}`, maxAttempts: 3 });
  }

  start(sweeps: Sweep[]): void {
    for (const s of sweeps) {
      if (!cron.validate(s.cron)) throw new Error(`invalid cron expression for ${s.kind}: ${s.cron}`);
      this.tasks.push(
        // The slot comes from the time the tick was scheduled for, not when the callback ran, so two
        // processes whose timers fire either side of a minute boundary still agree on the slot.
        cron.schedule(s.cron, (ctx) => {
          this.tick(s.kind, ctx.date).catch((err) => this.deps.log.error('could not enqueue sweep', { kind: s.kind, error: err }));
        }),
      );
    }
  }

  async stop(): Promise<void> {
    for (const t of this.tasks) await t.destroy();
    this.tasks = [];
  }
}
