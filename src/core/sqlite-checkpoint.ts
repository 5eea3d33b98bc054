/**
 * SQLite WAL checkpoints off the event loop.
 *
 * In WAL mode with `synchronous = NORMAL` a commit does not wait for the disk; a checkpoint (copying
 * the WAL back into the database file, with an fsync) does. SQLite runs one inside whichever commit
 * pushes the WAL past `wal_autocheckpoint` pages, and better-sqlite3 is synchronous, so that commit
 * holds the event loop for as long as the disk takes: several ms per 1,000 pages on a quiet disk,
 * hundreds when it is busy (seen in the webhooks bench: 100–300 ms blocks, most of it waiting on I/O).
 *
 * The runtime's connection therefore turns automatic checkpoints off, and a worker thread with its own
 * connection runs `PRAGMA wal_checkpoint(PASSIVE)` on a timer: PASSIVE never waits for readers or
 * writers, so the app's connection is not slowed, and the fsync happens on the worker's thread.
 * If the worker fails, the connection goes back to automatic checkpoints (the WAL never grows
 * without bound), and the failure is logged.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Knex } from 'knex';
import type { Logger } from './log.ts';

/** SQLite's default threshold (pages), restored if the worker stops working. */
const AUTOCHECKPOINT_PAGES = 1000;

// Plain CommonJS (workers evaluate `eval: true` code as a script): no tsx loader in the thread.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.filename, { fileMustExist: true });
db.pragma('busy_timeout = 5000');
const checkpoint = () => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, log: r.log, checkpointed: r.checkpointed });
  } catch (err) {
    parentPort.postMessage({ ok: false, error: String(err && err.message || err) });
  }
};
const timer = setInterval(checkpoint, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m === 'now') checkpoint();
  if (m === 'stop') { clearInterval(timer); try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {} db.close(); parentPort.close(); }
});
`;

export interface CheckpointResult {
  /** Frames in the WAL when it ran, and how many of them reached the database file. */
  log: number;
  checkpointed: number;
}

export interface BackgroundCheckpoints {
  /** Runs a checkpoint now (tests; operators never need to). */
  now(): Promise<CheckpointResult>;
  stop(): Promise<void>;
}

/**
 * Moves `db`'s WAL checkpoints (a file-backed SQLite database, one pooled connection) to a worker
 * thread that checkpoints every `everyMs`. Call before the app writes; `stop()` before `db.destroy()`.
 */
export async function checkpointInBackground(db: Knex, filename: string, log: Logger, everyMs = 1_000): Promise<BackgroundCheckpoints> {
  await db.raw('PRAGMA wal_autocheckpoint = 0');
  // execArgv: [] keeps the tsx loader (and its startup) out of the thread.
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { filename, everyMs, driver } });
  worker.unref();
  let stopped = false;
  let waiting: ((r: CheckpointResult) => void)[] = [];
  let failures = 0;
  const fallBack = (error: unknown) => {
    if (stopped) return;
    stopped = true;
    log.error('background WAL checkpoints stopped; SQLite checkpoints inside commits again', { error });
    db.raw(`PRAGMA wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`).catch(() => {});
    for (const w of waiting.splice(0)) w({ log: 0, checkpointed: 0 });
  };
  worker.on('message', (m: { ok: true; log: number; checkpointed: number } | { ok: false; error: string }) => {
    if (m.ok) {
      failures = 0;
      for (const w of waiting.splice(0)) w({ log: m.log, checkpointed: m.checkpointed });
      return;
    }
    // One busy moment is normal (PASSIVE gives up rather than wait); a run of failures is not.
    if (++failures >= 10) {
      fallBack(new Error(m.error));
      void worker.terminate();
    }
  });
  worker.on('error', fallBack);
  worker.on('exit', (code) => {
    if (!stopped) fallBack(new Error(`the checkpoint worker exited with code ${code}`));
  });
  return {
    now: () =>
      new Promise<CheckpointResult>((resolve) => {
        if (stopped) return resolve({ log: 0, checkpointed: 0 });
        waiting.push(resolve);
        worker.postMessage('now');
      }),
    async stop() {
      if (stopped) return;
      stopped = true;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage('stop');
      const timer = setTimeout(() => void worker.terminate(), 5_000);
      await exited;
      clearTimeout(timer);
      waiting = [];
    },
  };
}
