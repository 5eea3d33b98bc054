/**
 * A durable job queue in the `jobs` table. Jobs are claimed with SELECT … FOR UPDATE SKIP LOCKED on
 * MySQL/MariaDB and a conditional-UPDATE lease on SQLite; a dead worker's lease expires and another
 * worker retries the job. Failures retry with exponential backoff until `max_attempts`, then the job
 * is `dead` with its last error. Handlers must be idempotent: delivery is at least once.
 */
import os from 'node:os';
import type { Knex } from 'knex';
import { type Db, type Queryable, isMysql, toDate, toDateOrNull } from './db.ts';
import type { Clock } from './clock.ts';
import type { Logger } from './log.ts';
import { randomToken } from './ids.ts';

export type JobState = 'queued' | 'running' | 'done' | 'dead';

export interface Job<P = unknown> {
  id: number;
  kind: string;
  payload: P;
  attempts: number;
  maxAttempts: number;
  runAt: Date;
  state: JobState;
  lastError: string | null;
  leaseUntil: Date | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export type JobHandler<P = unknown> = (payload: P, job: Job<P>) => Promise<void>;

export interface EnqueueOptions {
  runAt?: Date;
  /** At most one job ever exists per key; enqueueing it again is a no-op. */
  uniqueKey?: string;
  maxAttempts?: number;
}

export interface JobQueueOptions {
  db: Db;
  clock: Clock;
  log: Logger;
  workerId?: string;
  leaseMs?: number;
  pollMs?: number;
  batchSize?: number;
  concurrency?: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called after an enqueue commits (e.g. to publish a nudge to other processes). */
  onEnqueued?: () => void;
}

/** Thrown by a handler to fail the job at once, without retrying. */
export class PermanentJobError extends Error {
  readonly permanent = true;
}

interface Row {
  id: number | string;
  kind: string;
  payload: string;
  attempts: number;
  max_attempts: number;
  run_at: unknown;
  state: JobState;
  last_error: string | null;
  lease_until: unknown;
  created_at: unknown;
  finished_at: unknown;
}

function fromRow(r: Row): Job {
  return {
    id: Number(r.id),
    kind: r.kind,
    payload: JSON.parse(r.payload),
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    runAt: toDate(r.run_at),
    state: r.state,
    lastError: r.last_error,
    leaseUntil: toDateOrNull(r.lease_until),
    createdAt: toDate(r.created_at),
    finishedAt: toDateOrNull(r.finished_at),
  };
}

export class JobQueue {
  readonly workerId: string;
  private readonly handlers = new Map<string, JobHandler<any>>();
  private readonly inFlight = new Set<Promise<void>>();
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private readonly o: Required<Omit<JobQueueOptions, 'onEnqueued' | 'workerId'>> & Pick<JobQueueOptions, 'onEnqueued'>;

  constructor(opts: JobQueueOptions) {
    this.workerId = opts.workerId ?? `${os.hostname()}:${process.pid}:${randomToken(6)}`;
    this.o = {
      leaseMs: 60_000,
      pollMs: 1_000,
      batchSize: 10,
      concurrency: 4,
      baseBackoffMs: 2_000,
      maxBackoffMs: 60 * 60_000,
      ...opts,
    };
  }

  /** Registers the handler for a job kind (`<feature>.<verb>`). */
  define<P>(kind: string, handler: JobHandler<P>): void {
    if (this.handlers.has(kind)) throw new Error(`job kind ${kind} is already defined`);
    this.handlers.set(kind, handler as JobHandler<any>);
  }

  hasHandler(kind: string): boolean {
    return this.handlers.has(kind);
  }

  /**
   * Adds a job. Pass the service's transaction so the job exists only if the change commits.
   * With a uniqueKey that already exists, nothing is added.
   */
  async enqueue(q: Queryable, kind: string, payload: unknown, opts: EnqueueOptions = {}): Promise<void> {
    const now = this.o.clock.now();
    const row = {
      kind,
      payload: JSON.stringify(payload ?? {}),
      unique_key: opts.uniqueKey ?? null,
      state: 'queued',
      run_at: opts.runAt ?? now,
      attempts: 0,
      max_attempts: opts.maxAttempts ?? 10,
      created_at: now,
      updated_at: now,
    };
    const insert = q('jobs').insert(row);
    if (opts.uniqueKey) await insert.onConflict('unique_key').ignore();
    else await insert;
    const trx = q as Knex.Transaction;
    if (trx.isTransaction && trx.executionPromise) {
      trx.executionPromise.then(() => this.notify(), () => {});
    } else {
      this.notify();
    }
  }

  private notify(): void {
    this.nudge();
    this.o.onEnqueued?.();
  }

  /** Wakes the polling loop now instead of at the next poll. */
  nudge(): void {
    this.wake?.();
  }

  /** Claims up to `limit` due jobs (and jobs whose lease has expired) for this worker. */
  async claim(limit = this.o.batchSize): Promise<Job[]> {
    const { db, clock } = this.o;
    const now = clock.now();
    const leaseUntil = new Date(now.getTime() + this.o.leaseMs);
    const due = (b: Knex.QueryBuilder) =>
      b
        .where((w) => w.where('state', 'queued').andWhere('run_at', '<=', now))
        .orWhere((w) => w.where('state', 'running').andWhere('lease_until', '<', now));
    const claimedBy = { state: 'running', lease_until: leaseUntil, locked_by: this.workerId, updated_at: now };

    let ids: number[];
    if (isMysql(db)) {
      ids = await db.transaction(
        async (trx) => {
          const rows = await trx('jobs').select('id').where(due).orderBy('run_at').limit(limit).forUpdate().skipLocked();
          const found = rows.map((r: { id: number | string }) => Number(r.id));
          if (found.length) {
            await trx('jobs').whereIn('id', found).update({ ...claimedBy, attempts: trx.raw('attempts + 1') });
          }
          return found;
        },
        { isolationLevel: 'read committed' },
      );
    } else {
      const candidates = await db('jobs').select('id').where(due).orderBy('run_at').limit(limit);
      ids = [];
      for (const c of candidates as { id: number }[]) {
        // The lease: only one worker's conditional UPDATE can match a due row.
        const n = await db('jobs')
          .where('id', c.id)
          .andWhere(due)
          .update({ ...claimedBy, attempts: db.raw('attempts + 1') });
        if (n === 1) ids.push(Number(c.id));
      }
    }
    if (!ids.length) return [];
    const rows = (await db('jobs').whereIn('id', ids).andWhere('locked_by', this.workerId).orderBy('run_at')) as Row[];
    return rows.map(fromRow);
  }

  /** Runs one claimed job and records the outcome. */
  async execute(job: Job): Promise<void> {
    const { db, clock, log } = this.o;
    const mine = () => db('jobs').where({ id: job.id, locked_by: this.workerId, state: 'running' });
    const handler = this.handlers.get(job.kind);
    if (job.attempts > job.maxAttempts) {
      await mine().update({ state: 'dead', last_error: job.lastError ?? 'lease expired on its last attempt', finished_at: clock.now(), updated_at: clock.now(), lease_until: null });
      return;
    }
    const heartbeat = setInterval(() => {
      void mine()
        .update({ lease_until: new Date(clock.now().getTime() + this.o.leaseMs) })
        .catch(() => {});
    }, Math.max(1_000, Math.floor(this.o.leaseMs / 3)));
    heartbeat.unref();
    try {
      if (!handler) throw new PermanentJobError(`no handler for job kind ${job.kind}`);
      await handler(job.payload, job);
      clearInterval(heartbeat);
      await mine().update({ state: 'done', finished_at: clock.now(), updated_at: clock.now(), lease_until: null, last_error: null });
    } catch (err) {
      clearInterval(heartbeat);
      const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      const permanent = (err as { permanent?: boolean; retryable?: boolean })?.permanent === true || (err as { retryable?: boolean })?.retryable === false;
      const now = clock.now();
      if (permanent || job.attempts >= job.maxAttempts) {
        log.error('job is dead', { jobId: job.id, kind: job.kind, attempts: job.attempts, error: message });
        await mine().update({ state: 'dead', last_error: message.slice(0, 4000), finished_at: now, updated_at: now, lease_until: null });
      } else {
        const delay = this.backoff(job.attempts);
        log.warn('job failed; will retry', { jobId: job.id, kind: job.kind, attempts: job.attempts, retryInMs: delay, error: message });
        await mine().update({ state: 'queued', last_error: message.slice(0, 4000), run_at: new Date(now.getTime() + delay), updated_at: now, lease_until: null, locked_by: null });
      }
    }
  }

  /** Delay before attempt n+1: base·2^(n-1), capped, with up to 10% jitter so retries spread out. */
  backoff(attempts: number): number {
    const raw = Math.min(this.o.maxBackoffMs, this.o.baseBackoffMs * 2 ** Math.max(0, attempts - 1));
    return Math.round(raw * (1 + Math.random() * 0.1));
  }

  /** Claims and runs due jobs until none are left; returns how many ran. For tests and the CLI. */
  async drain(maxRounds = 10_000): Promise<number> {
    let ran = 0;
    for (let round = 0; round < maxRounds; round++) {
      const jobs = await this.claim();
      if (!jobs.length) break;
      await this.runAll(jobs);
      ran += jobs.length;
    }
    return ran;
  }

  private async runAll(jobs: Job[]): Promise<void> {
    const queue = [...jobs];
    const lanes = Array.from({ length: Math.min(this.o.concurrency, queue.length) }, async () => {
      for (let job = queue.shift(); job; job = queue.shift()) await this.execute(job);
    });
    await Promise.all(lanes);
  }

  /** Starts the polling loop. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.poll();
  }

  private async poll(): Promise<void> {
    while (this.running) {
      let ran = 0;
      try {
        const jobs = await this.claim();
        ran = jobs.length;
        if (ran) {
          const p = this.runAll(jobs);
          this.inFlight.add(p);
          await p.finally(() => this.inFlight.delete(p));
        }
      } catch (err) {
        if (this.running) this.o.log.error('job polling failed', { error: err });
      }
      if (!this.running) break;
      if (ran) continue;
      await new Promise<void>((resolve) => {
        this.wake = () => {
          this.wake = null;
          if (this.timer) clearTimeout(this.timer);
          resolve();
        };
        this.timer = setTimeout(() => this.wake?.(), this.o.pollMs);
      });
    }
  }

  /** Stops claiming; waits for running jobs to finish. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await Promise.all([...this.inFlight]);
  }

  async get(id: number): Promise<Job | null> {
    const row = (await this.o.db('jobs').where({ id }).first()) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  /** Counts by state, for the dashboard and health. */
  async counts(): Promise<Record<JobState, number>> {
    const rows = (await this.o.db('jobs').select('state').count({ n: '*' }).groupBy('state')) as { state: JobState; n: number | string }[];
    const out: Record<JobState, number> = { queued: 0, running: 0, done: 0, dead: 0 };
    for (const r of rows) out[r.state] = Number(r.n);
    return out;
  }

  /** Deletes finished jobs older than `olderThanMs` (retention sweep). */
  async prune(olderThanMs: number): Promise<number> {
    const cutoff = new Date(this.o.clock.now().getTime() - olderThanMs);
    return this.o.db('jobs').where('state', 'done').andWhere('finished_at', '<', cutoff).del();
  }
}
