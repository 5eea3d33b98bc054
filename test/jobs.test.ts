import { expect } from 'chai';
import type { Knex } from 'knex';
import { forEachTarget } from './support/targets.ts';
import { build, type BuildOptions, type TestEnv } from './support/harness.ts';
import { deferred, jobsOf, onlyJob, spawnWorker } from './support/jobs-helpers.ts';
import { waitFor } from './support/wait.ts';
import { foregroundStarted } from '../src/core/pace.ts';
import { JobQueue, LEASE_EXPIRED_ERROR, PermanentJobError, type Job } from '../src/core/jobs.ts';
import { createLogger } from '../src/core/log.ts';
import type { Runtime } from '../src/runtime.ts';

class UpstreamDown extends Error {
  override name = 'UpstreamDown';
}

const silent = createLogger('silent');

/** Counts how often each job id ran, and which runtime ran it. */
function countingHandler(runs: Map<number, number>, perWorker: Map<string, number>, worker: string) {
  return async (_payload: unknown, job: Job) => {
    runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
    perWorker.set(worker, (perWorker.get(worker) ?? 0) + 1);
    await new Promise((r) => setImmediate(r)); // yield, so lanes and runtimes interleave
  };
}

/**
 * Whether the polling loop is asleep: its last claim found nothing and it has not claimed since
 * (after an empty claim it sets its wake-up in the same turn). Tests wait for this, not for a time.
 */
function loopAsleep(rt: Runtime): () => boolean {
  let asleep = false;
  const claim = rt.jobs.claim.bind(rt.jobs);
  rt.jobs.claim = async (...args: Parameters<typeof claim>) => {
    asleep = false;
    const jobs = await claim(...args);
    asleep = jobs.length === 0;
    return jobs;
  };
  return () => asleep;
}

async function enqueueMany(rt: Runtime, kind: string, n: number): Promise<void> {
  await rt.db.transaction(async (trx) => {
    for (let i = 0; i < n; i++) await rt.jobs.enqueue(trx, kind, { i });
  });
}

forEachTarget('job queue', (target) => {
  let env: TestEnv | undefined;
  // A fresh database per test; no plugins, so every job kind in it is this file's.
  const open = async (opts: BuildOptions = {}): Promise<TestEnv> => (env = await build(target, { pluginSources: [], ...opts }));
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  describe('enqueue and drain', () => {
    it('runs the handler with its payload and marks the job done', async () => {
      const { rt } = await open();
      const seen: unknown[] = [];
      rt.jobs.define<{ to: string; n: number }>('test.greet', async (payload) => void seen.push(payload));
      await rt.jobs.enqueue(rt.db, 'test.greet', { to: 'ada', n: 3 });
      expect(await rt.jobs.drain()).to.equal(1);
      expect(seen).to.deep.equal([{ to: 'ada', n: 3 }]);
      expect(await onlyJob(env!, 'test.greet')).to.include({ state: 'done', attempts: 1, lastError: null });
    });

    it('starts no job while a request of this process is unanswered, and runs it once the request is answered', async () => {
      // A request may hold jobs for a minute here (20 ms in production), so only its answer can release them.
      const { rt } = await open({ jobOptions: { foregroundWaitMs: 60_000 } });
      let runs = 0;
      rt.jobs.define('test.later', async () => void runs++);
      await rt.jobs.enqueue(rt.db, 'test.later', {});
      const answered = foregroundStarted();
      let drained = false;
      const drain = rt.jobs.drain().then((n) => ((drained = true), n));
      try {
        await waitFor(async () => (await jobsOf(env!, 'test.later'))[0]?.state === 'running');
        for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
        expect(runs).to.equal(0);
        expect(drained).to.equal(false);
      } finally {
        answered();
      }
      expect(await drain).to.equal(1);
      expect(runs).to.equal(1);
    });

    it('keeps one job for a unique key enqueued twice', async () => {
      const { rt } = await open();
      let runs = 0;
      rt.jobs.define('test.once', async () => void runs++);
      await rt.jobs.enqueue(rt.db, 'test.once', { first: true }, { uniqueKey: 'once:1' });
      await rt.db.transaction((trx) => rt.jobs.enqueue(trx, 'test.once', { first: false }, { uniqueKey: 'once:1' }));
      const [job, ...more] = await jobsOf(env!, 'test.once');
      expect(more).to.have.length(0);
      expect(job.payload).to.deep.equal({ first: true });
      await rt.jobs.drain();
      // Still one, even once the first has run: the key is spent.
      await rt.jobs.enqueue(rt.db, 'test.once', {}, { uniqueKey: 'once:1' });
      expect(await rt.jobs.drain()).to.equal(0);
      expect(runs).to.equal(1);
    });

    it('never creates a job enqueued in a transaction that rolls back', async () => {
      const { rt } = await open();
      rt.jobs.define('test.rollback', async () => {});
      const rolledBack = new Error('roll back');
      const err = await rt.db
        .transaction(async (trx) => {
          await rt.jobs.enqueue(trx, 'test.rollback', {});
          expect(await trx('jobs').where({ kind: 'test.rollback' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
          throw rolledBack;
        })
        .catch((e: unknown) => e);
      expect(err).to.equal(rolledBack);
      expect(await jobsOf(env!, 'test.rollback')).to.deep.equal([]);
      expect(await rt.jobs.drain()).to.equal(0);
    });

    it('does not claim a job with a future runAt until the clock passes it', async () => {
      const { rt, clock } = await open();
      let runs = 0;
      rt.jobs.define('test.later', async () => void runs++);
      const at = new Date(clock.now().getTime() + 10 * 60_000);
      await rt.jobs.enqueue(rt.db, 'test.later', {}, { runAt: at });
      clock.set(at.getTime() - 1);
      expect(await rt.jobs.drain()).to.equal(0);
      expect(await onlyJob(env!, 'test.later')).to.include({ state: 'queued', attempts: 0 });
      clock.set(at);
      expect(await rt.jobs.drain()).to.equal(1);
      expect(runs).to.equal(1);
    });

    it('leaves a job of a kind this process has no handler for to a process that has one', async () => {
      const { rt } = await open();
      const other = await env!.sibling();
      let runs = 0;
      other.jobs.define('test.elsewhere', async () => void runs++);
      await rt.jobs.enqueue(rt.db, 'test.elsewhere', {});
      expect(await rt.jobs.drain()).to.equal(0);
      expect(await onlyJob(env!, 'test.elsewhere')).to.include({ state: 'queued', attempts: 0 });
      expect(await other.jobs.drain()).to.equal(1);
      expect(runs).to.equal(1);
      expect(await onlyJob(env!, 'test.elsewhere')).to.include({ state: 'done', attempts: 1 });
    });
  });

  describe('failures', () => {
    it('retries a failing job with exponential backoff until it is dead', async () => {
      const { rt, clock } = await open();
      let runs = 0;
      rt.jobs.define('test.flaky', async () => {
        runs++;
        throw new UpstreamDown('503 from upstream');
      });
      await rt.jobs.enqueue(rt.db, 'test.flaky', {}, { maxAttempts: 4 });
      const base = 2_000; // JobQueue's default baseBackoffMs; jitter adds up to 10%
      for (let attempt = 1; attempt <= 3; attempt++) {
        const failedAt = clock.now().getTime();
        expect(await rt.jobs.drain()).to.equal(1);
        const job = await onlyJob(env!, 'test.flaky');
        expect(job).to.include({ state: 'queued', attempts: attempt });
        expect(job.lastError).to.match(/^UpstreamDown\b/);
        const expected = base * 2 ** (attempt - 1);
        expect(job.runAt.getTime() - failedAt).to.be.within(expected, Math.ceil(expected * 1.1));
        clock.set(job.runAt.getTime() - 1);
        expect(await rt.jobs.drain(), 'claimed before its retry time').to.equal(0);
        clock.set(job.runAt);
      }
      expect(await rt.jobs.drain()).to.equal(1);
      const dead = await onlyJob(env!, 'test.flaky');
      expect(dead).to.include({ state: 'dead', attempts: 4 });
      expect(dead.lastError).to.match(/^UpstreamDown\b/);
      expect(dead.finishedAt).to.be.an.instanceOf(Date);
      clock.advance(7 * 86_400_000);
      expect(await rt.jobs.drain()).to.equal(0);
      expect(runs).to.equal(4);
    });

    it('spaces retries exactly base·2^(n-1), capped, when jitter is off', async () => {
      const { rt, clock } = await open();
      const q = new JobQueue({ db: rt.db, clock, log: silent, baseBackoffMs: 1_000, maxBackoffMs: 5_000, backoffJitter: 0 });
      q.define('test.exact', async () => {
        throw new UpstreamDown('still down');
      });
      await q.enqueue(rt.db, 'test.exact', {}, { maxAttempts: 6 });
      const delays: number[] = [];
      for (let attempt = 1; attempt <= 5; attempt++) {
        const failedAt = clock.now().getTime();
        expect(await q.drain()).to.equal(1);
        const job = await onlyJob(env!, 'test.exact');
        delays.push(job.runAt.getTime() - failedAt);
        clock.set(job.runAt);
      }
      expect(delays).to.deep.equal([1_000, 2_000, 4_000, 5_000, 5_000]);
      // Jitter never pushes a delay past the cap.
      const jittery = new JobQueue({ db: rt.db, clock, log: silent, baseBackoffMs: 1_000, maxBackoffMs: 5_000, backoffJitter: 0.5 });
      for (let i = 0; i < 200; i++) expect(jittery.backoff(4)).to.equal(5_000);
      for (let i = 0; i < 200; i++) expect(jittery.backoff(2)).to.be.within(2_000, 3_000);
    });

    it('makes a job dead at once on a PermanentJobError or an error with retryable=false', async () => {
      const { rt } = await open();
      rt.jobs.define('test.permanent', async () => {
        throw new PermanentJobError('card number is invalid');
      });
      rt.jobs.define('test.not-retryable', async () => {
        throw Object.assign(new Error('422 from provider'), { code: 'provider_rejected', retryable: false });
      });
      await rt.jobs.enqueue(rt.db, 'test.permanent', {});
      await rt.jobs.enqueue(rt.db, 'test.not-retryable', {});
      expect(await rt.jobs.drain()).to.equal(2);
      for (const kind of ['test.permanent', 'test.not-retryable']) {
        const job = await onlyJob(env!, kind);
        expect(job, kind).to.include({ state: 'dead', attempts: 1 });
        expect(job.lastError, kind).to.be.a('string').and.not.be.empty;
      }
    });
  });

  describe('leases', () => {
    const LEASE_MS = 30_000;

    it('gives the job of a worker killed mid-run to another worker only once its lease expires', async function () {
      this.timeout(240_000); // a backstop: it starts a real Node process
      const { rt, clock } = await open({ jobOptions: { leaseMs: LEASE_MS } });
      const attemptsSeen: number[] = [];
      rt.jobs.define<{ order: string }>('test.crashy', async (payload, job) => {
        expect(payload).to.deep.equal({ order: 'ord_1' });
        attemptsSeen.push(job.attempts);
      });
      await rt.jobs.enqueue(rt.db, 'test.crashy', { order: 'ord_1' });

      // A real second process claims the job, enters the handler, and is SIGKILLed there.
      const worker = spawnWorker(env!, { mode: 'crash', kind: 'test.crashy', leaseMs: LEASE_MS });
      try {
        const started = await worker.next('started');
        expect(started.attempts).to.equal(1);
      } finally {
        await worker.kill();
      }
      const orphan = await onlyJob(env!, 'test.crashy');
      expect(orphan).to.include({ state: 'running', attempts: 1 });
      expect(orphan.leaseUntil!.getTime()).to.equal(clock.now().getTime() + LEASE_MS);

      // Until the lease runs out, nobody else may take it: the worker might only be slow.
      clock.set(orphan.leaseUntil!);
      expect(await rt.jobs.drain()).to.equal(0);
      expect(attemptsSeen).to.deep.equal([]);

      clock.advance(1);
      expect(await rt.jobs.drain()).to.equal(1);
      expect(attemptsSeen).to.deep.equal([2]);
      expect(await onlyJob(env!, 'test.crashy')).to.include({ state: 'done', attempts: 2, leaseUntil: null });
    });

    it('keeps renewing the lease of a long-running job, so no other worker takes it', async () => {
      // leaseMs 300 → a heartbeat every 100 ms of real time, each renewing from the test clock.
      const { rt, clock } = await open({ jobOptions: { leaseMs: 300 } });
      const other = await env!.sibling();
      const started = deferred();
      const release = deferred();
      let runs = 0;
      rt.jobs.define('test.long', async () => {
        runs++;
        started.resolve();
        await release.promise;
      });
      other.jobs.define('test.long', async () => void runs++);
      await rt.jobs.enqueue(rt.db, 'test.long', {});
      const draining = rt.jobs.drain();
      await started.promise;
      try {
        for (let step = 0; step < 5; step++) {
          clock.advance(200); // 1 s in all: more than three leases
          const renewedPast = clock.now().getTime() + 200;
          await waitFor(async () => (await onlyJob(env!, 'test.long')).leaseUntil!.getTime() >= renewedPast, { timeout: 5_000, message: 'a heartbeat' });
          expect(await other.jobs.drain()).to.equal(0);
        }
      } finally {
        release.resolve();
      }
      await draining;
      expect(runs).to.equal(1);
      expect(await onlyJob(env!, 'test.long')).to.include({ state: 'done', attempts: 1 });
    });

    it('makes a job dead when its lease expires on the last attempt, without running it again', async () => {
      const { rt, clock } = await open({ jobOptions: { leaseMs: LEASE_MS } });
      let runs = 0;
      rt.jobs.define('test.last-chance', async () => void runs++);
      await rt.jobs.enqueue(rt.db, 'test.last-chance', {}, { maxAttempts: 1 });
      // A worker that claims it and dies before recording anything.
      const ghost = new JobQueue({ db: rt.db, clock, log: silent, workerId: 'ghost', leaseMs: LEASE_MS });
      ghost.define('test.last-chance', async () => {});
      expect(await ghost.claim()).to.have.length(1);

      clock.advance(LEASE_MS + 1);
      expect(await rt.jobs.drain()).to.equal(0);
      expect(runs).to.equal(0);
      const job = await onlyJob(env!, 'test.last-chance');
      expect(job).to.include({ state: 'dead', attempts: 1, lastError: LEASE_EXPIRED_ERROR });
    });

    it('does not let a worker that stalled past its lease run or record a job another worker took over', async () => {
      const { rt, clock } = await open({ jobOptions: { leaseMs: LEASE_MS } });
      const ranBy: string[] = [];
      const slow = new JobQueue({ db: rt.db, clock, log: silent, workerId: 'slow', leaseMs: LEASE_MS });
      slow.define('test.stall', async () => void ranBy.push('slow'));
      rt.jobs.define('test.stall', async () => void ranBy.push('fresh'));
      await rt.jobs.enqueue(rt.db, 'test.stall', {});
      const [claimed] = await slow.claim();

      clock.advance(LEASE_MS + 1); // the slow worker is stuck behind other work for longer than its lease
      expect(await rt.jobs.drain()).to.equal(1);
      await slow.execute(claimed); // ...and finally gets to it
      expect(ranBy).to.deep.equal(['fresh']);
      expect(await onlyJob(env!, 'test.stall')).to.include({ state: 'done', attempts: 2 });
    });
  });

  describe('two workers on one database', () => {
    /** Enqueues n jobs, drains them from two runtimes at once, and checks each ran exactly once. */
    async function drainsExactlyOnce(n: number, concurrency: number): Promise<void> {
      const { rt } = await open({ jobOptions: { concurrency } });
      const other = await env!.sibling();
      const runs = new Map<number, number>();
      const perWorker = new Map<string, number>();
      rt.jobs.define('test.count', countingHandler(runs, perWorker, 'a'));
      other.jobs.define('test.count', countingHandler(runs, perWorker, 'b'));
      await enqueueMany(rt, 'test.count', n);

      const [a, b] = await Promise.all([rt.jobs.drain(), other.jobs.drain()]);
      expect(a + b).to.equal(n);
      expect(runs.size).to.equal(n);
      const twice = [...runs].filter(([, count]) => count !== 1);
      expect(twice, 'jobs that ran more than once').to.deep.equal([]);
      expect(await rt.jobs.counts()).to.deep.equal({ queued: 0, running: 0, done: n, dead: 0 });
      // Both really drained (otherwise this would not test concurrent claims at all).
      expect(perWorker.get('a'), 'jobs run by the first runtime').to.be.greaterThan(0);
      expect(perWorker.get('b'), 'jobs run by the second runtime').to.be.greaterThan(0);
    }

    if (target.name === 'mariadb') {
      it('runs each of 1,000 jobs exactly once when two runtimes drain them at the same time', async function () {
        this.timeout(120_000);
        await drainsExactlyOnce(1_000, 8);
      });
    } else {
      it('runs each of 200 jobs exactly once when two runtimes drain the same SQLite file', async function () {
        this.timeout(60_000);
        await drainsExactlyOnce(200, 4);
      });
    }

    it('runs each of 300 jobs exactly once when three separate processes drain them at the same time', async function () {
      this.timeout(240_000); // a backstop: it starts two real Node processes
      // Real processes: on SQLite this is where two writers really contend for the file (in one
      // process better-sqlite3 runs each statement to completion, so runtimes only interleave).
      const { rt } = await open({ jobOptions: { concurrency: 4 } });
      const n = 300;
      await enqueueMany(rt, 'test.multi', n);
      const here: number[] = [];
      rt.jobs.define('test.multi', async (_p, job) => {
        here.push(job.id);
        await new Promise((r) => setImmediate(r));
      });
      const workers = [0, 1].map(() => spawnWorker(env!, { mode: 'drain', kind: 'test.multi', concurrency: 4 }));
      try {
        await Promise.all(workers.map((w) => w.next('ready')));
        for (const w of workers) w.send({ type: 'go' });
        const [, ...reports] = await Promise.all([rt.jobs.drain(), ...workers.map((w) => w.next('drained'))]);
        const ranBy = [here, ...reports.map((r) => r.ids)];
        const all = ranBy.flat();
        expect(all).to.have.length(n);
        expect(new Set(all).size, 'distinct jobs run').to.equal(n);
        expect(ranBy.filter((ids) => ids.length > 0).length, 'processes that ran jobs').to.be.at.least(2);
        expect(await rt.jobs.counts()).to.deep.equal({ queued: 0, running: 0, done: n, dead: 0 });
      } finally {
        await Promise.all(workers.map((w) => w.kill()));
      }
    });

    it('catches double runs: an unsafe claim (select due ids, then update) runs some jobs twice', async function () {
      this.timeout(60_000);
      // The negative control for the test above: the same workload, two concurrent drainers, but a
      // claim without FOR UPDATE SKIP LOCKED and without a conditional UPDATE.
      const { rt } = await open();
      const other = await env!.sibling();
      const n = 200;
      await enqueueMany(rt, 'test.unsafe', n);
      const runs = new Map<number, number>();
      // The gap a busy process leaves between read and write by chance, made certain: each drainer
      // reads, then waits until the other has read too (or has finished) before it writes.
      let waiting: (() => void) | null = null;
      let finished = 0;
      const bothRead = () =>
        new Promise<void>((resolve) => {
          if (waiting) {
            waiting();
            waiting = null;
            resolve();
          } else if (finished) resolve();
          else waiting = resolve;
        });
      const unsafeDrain = async (db: Knex, worker: string) => {
        for (;;) {
          const ids = ((await db('jobs').select('id').where({ kind: 'test.unsafe', state: 'queued' }).orderBy('id').limit(10)) as { id: number }[]).map((r) =>
            Number(r.id),
          );
          if (!ids.length) {
            finished++;
            waiting?.();
            waiting = null;
            return;
          }
          await bothRead();
          await db('jobs').whereIn('id', ids).update({ state: 'running', locked_by: worker });
          for (const id of ids) {
            runs.set(id, (runs.get(id) ?? 0) + 1);
            await db('jobs').where({ id }).update({ state: 'done' });
          }
        }
      };
      await Promise.all([unsafeDrain(rt.db, 'a'), unsafeDrain(other.db, 'b')]);
      expect(runs.size).to.equal(n);
      const twice = [...runs.values()].filter((count) => count > 1);
      expect(twice.length, 'jobs run twice by the unsafe claim').to.be.greaterThan(0);
    });
  });

  describe('scheduler', () => {
    it('enqueues one sweep job when two runtimes tick the same sweep in the same minute', async () => {
      const { rt, clock } = await open();
      const other = await env!.sibling();
      clock.set('2026-03-02T09:05:00.000Z');
      await rt.scheduler.tick('test.sweep');
      clock.set('2026-03-02T09:05:59.999Z');
      await other.scheduler.tick('test.sweep');
      await rt.scheduler.tick('test.sweep');
      expect(await jobsOf(env!, 'test.sweep')).to.have.length(1);
      clock.set('2026-03-02T09:06:00.000Z');
      await Promise.all([rt.scheduler.tick('test.sweep'), other.scheduler.tick('test.sweep')]);
      const jobs = await jobsOf(env!, 'test.sweep');
      expect(jobs).to.have.length(2);
      expect(jobs.map((j) => j.maxAttempts)).to.deep.equal([3, 3]);
    });
  });

  describe('the polling loop', () => {
    it('stop() waits for the running job to finish and claims nothing after', async () => {
      const { rt } = await open();
      const started = deferred();
      const release = deferred();
      rt.jobs.define('test.slow', async () => {
        started.resolve();
        await release.promise;
      });
      rt.jobs.define('test.after-stop', async () => {});
      await rt.jobs.enqueue(rt.db, 'test.slow', {});
      rt.jobs.start();
      await started.promise;

      let stopped = false;
      const stopping = rt.jobs.stop().then(() => void (stopped = true));
      try {
        // Two round trips to the database give stop() every chance to return early.
        await rt.jobs.enqueue(rt.db, 'test.after-stop', {});
        expect(await onlyJob(env!, 'test.slow')).to.include({ state: 'running' });
        expect(stopped, 'stop() returned while a job was running').to.equal(false);
      } finally {
        release.resolve();
      }
      await stopping;
      expect(await onlyJob(env!, 'test.slow')).to.include({ state: 'done' });
      expect(await onlyJob(env!, 'test.after-stop')).to.include({ state: 'queued' });
    });

    it('runs a job enqueued while the loop sleeps at once, not at the next poll', async function () {
      this.timeout(30_000);
      const { rt } = await open({ jobOptions: { pollMs: 60_000 } });
      const done: string[] = [];
      rt.jobs.define<{ name: string }>('test.wake', async (p) => void done.push(p.name));
      const asleep = loopAsleep(rt);
      rt.jobs.start();
      await rt.jobs.enqueue(rt.db, 'test.wake', { name: 'first' });
      // After the first job the loop finds nothing more and sleeps for a minute (pollMs); an enqueue must wake it.
      await waitFor(() => done.includes('first') && asleep(), { message: 'the first job, then the loop asleep' });
      await rt.db.transaction((trx) => rt.jobs.enqueue(trx, 'test.wake', { name: 'second' }));
      // Well inside the minute the next poll would take.
      await waitFor(() => done.includes('second'), { timeout: 10_000, message: 'the second job (the loop was not woken)' });
    });

    if (target.redisUrl) {
      it('wakes a sleeping worker when another process enqueues (nudge through Redis)', async function () {
        this.timeout(30_000);
        const { rt } = await open({ jobOptions: { pollMs: 60_000 } });
        const web = await env!.sibling(); // a process that only enqueues
        const done: number[] = [];
        rt.jobs.define<{ n: number }>('test.remote', async (p) => void done.push(p.n));
        const asleep = loopAsleep(rt);
        rt.jobs.start();
        await waitFor(asleep, { message: "the loop's first, empty claim" });
        await web.jobs.enqueue(web.db, 'test.remote', { n: 1 });
        // Well inside the minute the next poll would take.
        await waitFor(() => done.length === 1, { timeout: 10_000, message: 'the remote job (no nudge arrived)' });
      });
    }
  });
});
