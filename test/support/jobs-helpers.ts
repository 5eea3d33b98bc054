/** Helpers for the job-queue and event tests: a killable worker process, job lookups. Waits: support/wait.ts. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestEnv } from './harness.ts';
import type { Job } from '../../src/core/jobs.ts';
import type { ParentMessage, WorkerMessage, WorkerMode } from './jobs-worker.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');

export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** All jobs of a kind, oldest first. */
export async function jobsOf(env: TestEnv, kind: string): Promise<Job[]> {
  const rows = (await env.rt.db('jobs').select('id').where({ kind }).orderBy('id')) as { id: number | string }[];
  return Promise.all(rows.map(async (r) => (await env.rt.jobs.get(Number(r.id)))!));
}

/** The one job of a kind; fails if there is not exactly one. */
export async function onlyJob(env: TestEnv, kind: string): Promise<Job> {
  const jobs = await jobsOf(env, kind);
  if (jobs.length !== 1) throw new Error(`expected one ${kind} job, found ${jobs.length}`);
  return jobs[0];
}

export interface WorkerProcess {
  proc: ChildProcess;
  /** Resolves with the first message of `type` (rejects if the process exits first, or as a backstop after `ms`). */
  next<T extends WorkerMessage['type']>(type: T, ms?: number): Promise<Extract<WorkerMessage, { type: T }>>;
  send(msg: ParentMessage): void;
  /** Resolves once the process has exited by itself. */
  exited(): Promise<number | null>;
  /** SIGKILL: no cleanup, no last words; resolves once the process is gone. */
  kill(): Promise<void>;
}

/**
 * Starts test/support/jobs-worker.ts as a separate Node process on the test's database (see that
 * file for the modes). Its clock is a ManualClock frozen at the test clock's current time.
 */
export function spawnWorker(env: TestEnv, opts: { mode: WorkerMode; kind: string; leaseMs?: number; concurrency?: number }): WorkerProcess {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'jobs-worker.ts')], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      JOBS_WORKER_MODE: opts.mode,
      JOBS_WORKER_CONFIG: JSON.stringify(env.config),
      JOBS_WORKER_NOW: env.clock.now().toISOString(),
      JOBS_WORKER_KIND: opts.kind,
      JOBS_WORKER_LEASE_MS: String(opts.leaseMs ?? 60_000),
      JOBS_WORKER_CONCURRENCY: String(opts.concurrency ?? 4),
    },
  });
  const messages: WorkerMessage[] = [];
  const waiters = new Set<() => void>();
  let exitCode: number | null | undefined;
  const gone = new Promise<number | null>((resolve) =>
    proc.once('exit', (code) => {
      exitCode = code;
      for (const w of waiters) w();
      resolve(code);
    }),
  );
  proc.on('message', (m: WorkerMessage) => {
    messages.push(m);
    for (const w of waiters) w();
  });
  return {
    proc,
    next(type, ms = 180_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`worker sent no "${type}" within ${ms} ms`)), ms);
        const check = () => {
          const m = messages.find((x) => x.type === type);
          if (m) done(null, m as never);
          else if (exitCode !== undefined) done(new Error(`worker exited (${exitCode}) before sending "${type}"`));
        };
        const done = (err: Error | null, m?: never) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve(m!);
        };
        waiters.add(check);
        check();
      });
    },
    send(msg) {
      proc.send(msg);
    },
    exited: () => gone,
    async kill() {
      if (exitCode === undefined) proc.kill('SIGKILL');
      await gone;
    },
  };
}
