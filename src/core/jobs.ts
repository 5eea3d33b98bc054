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
import { insertRows } from './bulk.ts';
import { afterCommit } from './changes.ts';
import { asBackground, FOREGROUND_WAIT_MS, pace, yieldToForeground } from './pace.ts';

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
  /** How long a claim is valid; a running job's heartbeat renews it, a dead worker's runs out. */
  leaseMs?: number;
  pollMs?: number;
  batchSize?: number;
  concurrency?: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Random spread added to each retry delay, as a fraction of it (0.1 = up to +10%); 0 = exact delays. */
  backoffJitter?: number;
  /** The longest a job waits for this process's unanswered requests before it starts anyway (core/pace.ts). */
  foregroundWaitMs?: number;
  /** Called after an enqueue commits (e.g. to publish a nudge to other processes). */
  onEnqueued?: () => void;
}

/** Thrown by a handler to fail the job at once, without retrying. */
export class PermanentJobError extends Error {
  readonly permanent = true;
}

/** last_error of a job whose worker stopped renewing its lease during the last allowed attempt. */
export const LEASE_EXPIRED_ERROR = 'LeaseExpired: the worker stopped during the last attempt (crashed, killed or stalled)';

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
    attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts),
    runAt: toDate(r.run_at),
    state: r.state,
    lastError: r.last_error,
    leaseUntil: toDateOrNull(r.lease_until),
    createdAt: toDate(r.created_at),
    finishedAt: toDateOrNull(r.finished_at),
  };
}

type Settings = Required<Omit<JobQueueOptions, 'onEnqueued' | 'workerId'>> & Pick<JobQueueOptions, 'onEnqueued'>;

export class JobQueue {
  readonly workerId: string;
  private readonly handlers = new Map<string, JobHandler<any>>();
  /** Called when a job of the kind dies without its handler knowing (its lease ran out on the last attempt). */
  private readonly onDead = new Map<string, (payload: any, error: string) => Promise<void>>();
  private running = false;
  /** Set by nudge(); a nudge that arrives while the loop is busy must not be lost. */
  private nudged = false;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private readonly o: Settings;

  constructor(opts: JobQueueOptions) {
    this.workerId = opts.workerId ?? `${os.hostname()}:${process.pid}:${randomToken(6)}`;
    // Drop explicit undefineds (e.g. `{ pollMs: undefined }` from a partial config) so defaults apply.
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as JobQueueOptions;
    this.o = {
      leaseMs: 60_000,
      pollMs: 1_000,
      batchSize: 10,
      concurrency: 4,
      baseBackoffMs: 2_000,
      maxBackoffMs: 60 * 60_000,
      backoffJitter: 0.1,
      foregroundWaitMs: FOREGROUND_WAIT_MS,
      ...given,
    };
  }

  /**
   * Registers the handler for a job kind (`<feature>.<verb>`). `onDead` hears of a job that died
   * without its handler seeing the last failure — its worker stopped (crashed, killed, stalled) during
   * the last allowed attempt — so the owner can record that the work stopped.
   */
  define<P>(kind: string, handler: JobHandler<P>, opts: { onDead?: (payload: P, error: string) => Promise<void> } = {}): void {
    if (this.handlers.has(kind)) throw new Error(`job kind ${kind} is already defined`);
    this.handlers.set(kind, handler as JobHandler<any>);
    if (opts.onDead) this.onDead.set(kind, opts.onDead);
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
    this.notifyAfterCommit(q);
  }

  /**
   * Adds many jobs of one kind in one multi-row statement (core/bulk.ts), in the caller's transaction
   * like enqueue. Jobs with a uniqueKey that exists already are skipped.
   */
  async enqueueMany(q: Queryable, kind: string, jobs: { payload: unknown; uniqueKey?: string; runAt?: Date }[], opts: { maxAttempts?: number } = {}): Promise<void> {
    if (!jobs.length) return;
    const now = this.o.clock.now();
    const columns = ['kind', 'payload', 'unique_key', 'state', 'run_at', 'attempts', 'max_attempts', 'created_at', 'updated_at'];
    const rows = jobs.map((j) => [kind, JSON.stringify(j.payload ?? {}), j.uniqueKey ?? null, 'queued', j.runAt ?? now, 0, opts.maxAttempts ?? 10, now, now]);
    await insertRows(q, 'jobs', columns, rows, jobs.some((j) => j.uniqueKey) ? { ignoreDuplicatesOf: 'unique_key' } : {});
    this.notifyAfterCommit(q);
  }

  /** Nudges once the job is visible to other connections, i.e. after `q` (a transaction) commits. */
  private notifyAfterCommit(q: Queryable): void {
    afterCommit(q, () => this.notify());
  }

  private notify(): void {
    this.nudge();
    this.o.onEnqueued?.();
  }

  /** Wakes the polling loop now instead of at the next poll. */
  nudge(): void {
    this.nudged = true;
    this.wake?.();
  }

  /**
   * Claims up to `limit` due jobs for this worker: queued jobs whose run_at has passed, and running
   * jobs whose lease expired (their worker died) and that have attempts left. Only kinds this queue
   * has a handler for are claimed, so a process that lacks a feature or plugin (an older version
   * during a rolling deploy, the CLI) leaves those jobs to a process that can run them.
   */
  async claim(limit = this.o.batchSize): Promise<Job[]> {
    const { db, clock } = this.o;
    const kinds = [...this.handlers.keys()];
    if (!kinds.length || limit < 1) return [];
    const now = clock.now();
    await this.reapExhausted(now);
    const leaseUntil = new Date(now.getTime() + this.o.leaseMs);
    const claimedBy = { state: 'running', lease_until: leaseUntil, locked_by: this.workerId, updated_at: now };
    const queuedDue = (b: Knex.QueryBuilder) => b.where('state', 'queued').andWhere('run_at', '<=', now).whereIn('kind', kinds);
    const leaseExpired = (b: Knex.QueryBuilder) =>
      b.where('state', 'running').andWhere('lease_until', '<', now).andWhere('attempts', '<', db.ref('max_attempts')).whereIn('kind', kinds);

    let rows: Row[];
    if (isMysql(db)) {
      // Two index-ordered scans, (state, lease_until) then (state, run_at): each stops after `limit`
      // rows, so only the rows returned get locked. One ORDER BY over an OR would filesort and lock
      // every due row until commit, and a concurrent worker would find nothing to claim.
      const ids = await db.transaction(
        async (trx) => {
          const ofRows = (rs: { id: number | string }[]) => rs.map((r) => Number(r.id));
          const expired = ofRows(await trx('jobs').select('id').where(leaseExpired).orderBy('lease_until').limit(limit).forUpdate().skipLocked());
          const fresh =
            expired.length < limit
              ? ofRows(await trx('jobs').select('id').where(queuedDue).orderBy('run_at').limit(limit - expired.length).forUpdate().skipLocked())
              : [];
          const found = [...expired, ...fresh];
          if (found.length) await trx('jobs').whereIn('id', found).update({ ...claimedBy, attempts: trx.raw('attempts + 1') });
          return found;
        },
        { isolationLevel: 'read committed' },
      );
      if (!ids.length) return [];
      rows = (await db('jobs').whereIn('id', ids).andWhere('locked_by', this.workerId)) as Row[];
    } else {
      // The lease is one conditional UPDATE: SQLite runs a statement under its single write lock, so
      // the subquery's choice and the update are atomic against every other connection and process.
      // The candidates are two index-ordered scans that each stop after `limit` rows ((state, run_at)
      // and (state, lease_until)): one ORDER BY over an OR would sort every due job on every claim,
      // tens of milliseconds with the event loop held once tens of thousands are due.
      const candidates = db
        .select('id', 'run_at')
        .from(db('jobs').select('id', 'run_at').where(queuedDue).orderBy('run_at').limit(limit).as('q'))
        .unionAll((u) => u.select('id', 'run_at').from(db('jobs').select('id', 'run_at').where(leaseExpired).orderBy('lease_until').limit(limit).as('e')));
      rows = (await db('jobs')
        .whereIn('id', db.select('id').from(candidates.as('c')).orderBy('run_at').limit(limit))
        .update({ ...claimedBy, attempts: db.raw('attempts + 1') })
        .returning('*')) as Row[];
    }
    return rows.map(fromRow).sort((a, b) => a.runAt.getTime() - b.runAt.getTime() || a.id - b.id);
  }

  /**
   * A job whose lease expired during its last allowed attempt is not claimed again: it becomes
   * `dead` with LEASE_EXPIRED_ERROR instead of running an attempt beyond max_attempts.
   */
  private async reapExhausted(now: Date): Promise<void> {
    const { db, log } = this.o;
    const exhausted = (b: Knex.QueryBuilder) =>
      b.where('state', 'running').andWhere('lease_until', '<', now).andWhere('attempts', '>=', db.ref('max_attempts'));
    // A read first, so the common case (nothing to reap) takes no write lock on SQLite.
    const found = (await db('jobs').select('id', 'kind', 'payload').where(exhausted).limit(100)) as { id: number | string; kind: string; payload: string }[];
    if (!found.length) return;
    const ids = found.map((r) => Number(r.id));
    const dead: typeof found = [];
    // Row by row (this is rare): the process whose UPDATE changed a row is the one that tells its owner.
    for (const r of found) {
      const n = await db('jobs')
        .where({ id: r.id })
        .andWhere(exhausted)
        .update({ state: 'dead', last_error: LEASE_EXPIRED_ERROR, lease_until: null, finished_at: now, updated_at: now });
      if (n) dead.push(r);
    }
    if (!dead.length) return;
    log.error('jobs are dead: their lease expired on the last attempt', { jobIds: ids });
    for (const r of dead) {
      const hook = this.onDead.get(r.kind);
      if (!hook) continue;
      await hook(JSON.parse(r.payload), LEASE_EXPIRED_ERROR).catch((err) => log.error('a dead job’s owner could not record it', { jobId: r.id, kind: r.kind, error: err instanceof Error ? err.message : String(err) }));
    }
  }

  /** Runs one claimed job and records the outcome. */
  async execute(job: Job): Promise<void> {
    const { db, clock, log, leaseMs } = this.o;
    const mine = () => db('jobs').where({ id: job.id, locked_by: this.workerId, state: 'running' });
    const renewLease = () => mine().update({ lease_until: new Date(clock.now().getTime() + leaseMs) });
    const handler = this.handlers.get(job.kind);
    if (!handler) {
      // Only reachable by calling execute() directly: claim() skips kinds without a handler.
      await mine().update({ state: 'queued', attempts: db.raw('attempts - 1'), locked_by: null, lease_until: null, updated_at: clock.now() });
      return;
    }
    // A job can wait in a claimed batch behind slower ones. If less than half its lease is left,
    // renew it first; if that fails, the lease ran out and another worker has the job now.
    if (!job.leaseUntil || job.leaseUntil.getTime() - clock.now().getTime() < leaseMs / 2) {
      if ((await renewLease()) !== 1) {
        log.warn('job lease lost before it started; leaving it to its new worker', { jobId: job.id, kind: job.kind });
        return;
      }
    }
    const heartbeat = setInterval(() => void renewLease().catch(() => {}), Math.max(100, Math.floor(leaseMs / 3)));
    heartbeat.unref();
    let outcome: Record<string, unknown>;
    try {
      await asBackground(async () => handler(job.payload, job), this.o.foregroundWaitMs);
      outcome = { state: 'done', finished_at: clock.now(), updated_at: clock.now(), lease_until: null, last_error: null };
    } catch (err) {
      const message = (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 4000);
      const e = err as { permanent?: unknown; retryable?: unknown } | null;
      const permanent = e?.permanent === true || e?.retryable === false;
      const now = clock.now();
      if (permanent || job.attempts >= job.maxAttempts) {
        log.error('job is dead', { jobId: job.id, kind: job.kind, attempts: job.attempts, error: message });
        outcome = { state: 'dead', last_error: message, finished_at: now, updated_at: now, lease_until: null };
      } else {
        const delay = this.backoff(job.attempts);
        log.warn('job failed; will retry', { jobId: job.id, kind: job.kind, attempts: job.attempts, retryInMs: delay, error: message });
        outcome = { state: 'queued', last_error: message, run_at: new Date(now.getTime() + delay), updated_at: now, lease_until: null, locked_by: null };
      }
    } finally {
      clearInterval(heartbeat);
    }
    if ((await mine().update(outcome)) !== 1) {
      // Our lease ran out mid-run (a stall longer than leaseMs): another worker may have run it too.
      log.warn('job finished after its lease was lost; outcome not recorded', { jobId: job.id, kind: job.kind, state: outcome.state });
    }
  }

  /** Delay before attempt n+1: base·2^(n-1) plus up to `backoffJitter` of it, capped at maxBackoffMs. */
  backoff(attempts: number): number {
    const exact = this.o.baseBackoffMs * 2 ** Math.max(0, attempts - 1);
    return Math.round(Math.min(this.o.maxBackoffMs, exact * (1 + Math.random() * this.o.backoffJitter)));
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

  /** Runs a claimed batch on `concurrency` lanes; one job's failure to record never stops the rest. */
  private async runAll(jobs: Job[]): Promise<void> {
    const queue = [...jobs];
    const lanes = Array.from({ length: Math.min(this.o.concurrency, queue.length) }, async () => {
      for (let job = queue.shift(); job; job = queue.shift()) {
        await yieldToForeground(this.o.foregroundWaitMs);
        try {
          await this.execute(job);
        } catch (err) {
          // The database failed while recording; the lease will expire and the job be retried.
          this.o.log.error('could not record a job outcome', { jobId: job.id, kind: job.kind, error: err });
        }
        // Let timers and I/O run between jobs: on SQLite a job that only queries settles without a
        // trip through the event loop, and the lanes share one slice per loop turn (core/pace.ts).
        await pace();
      }
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
      this.nudged = false;
      let ran = 0;
      let failed = false;
      try {
        // A nudge from a request's commit comes while that request is still being answered.
        await yieldToForeground(this.o.foregroundWaitMs);
        const jobs = await this.claim();
        ran = jobs.length;
        if (ran) await this.runAll(jobs);
      } catch (err) {
        failed = true;
        if (this.running) this.o.log.error('job polling failed', { error: err });
      }
      if (!this.running) break;
      // Claim again at once after a full round, or when a nudge came in while we were busy (its job
      // may have committed after our claim looked).
      if (ran || (this.nudged && !failed)) continue;
      await new Promise<void>((resolve) => {
        this.wake = () => {
          this.wake = null;
          if (this.timer) clearTimeout(this.timer);
          this.timer = null;
          resolve();
        };
        this.timer = setTimeout(() => this.wake?.(), this.o.pollMs);
      });
    }
  }

  /** Stops claiming; waits for the jobs being run to finish. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    this.loop = null;
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

  /** Deletes jobs finished (done, or dead) more than `olderThanMs` ago (retention sweep). */
  async prune(olderThanMs: number, state: 'done' | 'dead' = 'done'): Promise<number> {
    const cutoff = new Date(this.o.clock.now().getTime() - olderThanMs);
    return this.o.db('jobs').where('state', state).andWhere('finished_at', '<', cutoff).del();
  }
}
