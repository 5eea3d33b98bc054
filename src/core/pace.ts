/**
 * Cooperative yielding for long runs of work that may never touch the event loop.
 *
 * On SQLite every query settles synchronously, so a job, a batch or a sweep made only of queries runs
 * as one chain of microtasks: timers, I/O and incoming requests wait until it ends. Yielding with
 * `setImmediate` after each unit is not enough when several such runs interleave (the job queue's
 * lanes): all of them resume in the same check phase, one after another, and the loop turn lasts as
 * long as all their units together.
 *
 * `pace()` shares one time slice per loop turn among every caller in the process: it returns at once
 * while the current turn has run less than `sliceMs`, and otherwise waits for a later turn (in which
 * the first thing to run starts a new slice). Callers call it between units of work; the loop is then
 * held for about one slice plus one unit, however many callers there are.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

/** How long one loop turn may run callers' work before they yield (ms). */
export const SLICE_MS = 1;

let sliceStart = performance.now();
let turnMarked = false;
/** Nobody has run in the current slice yet: the first caller of a new turn always may. */
let fresh = true;

function newTurn(): void {
  turnMarked = false;
  fresh = true;
  sliceStart = performance.now();
}

/** Returns when the caller may go on without holding the event loop past its slice. */
export async function pace(sliceMs = SLICE_MS): Promise<void> {
  while (!fresh && performance.now() - sliceStart >= sliceMs) {
    // Queued before our own wake-up, so it runs first in the next check phase and starts its slice.
    if (!turnMarked) {
      turnMarked = true;
      setImmediate(newTurn);
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  fresh = false;
}

// ---- Foreground first --------------------------------------------------------------------------
// In one process that serves requests and runs jobs (every SQLite install, and each process of a
// scaled one), a job that starts while a request is being handled takes turns with it query by query
// and the customer waits for both. Background work therefore waits while requests are unanswered —
// but never starves: after waiting FOREGROUND_WAIT_MS it runs for as long again without waiting.

/** The longest background work waits for unanswered requests before it runs anyway (ms). */
export const FOREGROUND_WAIT_MS = 20;

let unanswered = 0;
let waiters: (() => void)[] = [];
/** Background work waited its longest until then: it runs without waiting until this time. */
let freeUntil = 0;

/** Counts a request as unanswered until the returned function is called (more calls do nothing). */
export function foregroundStarted(): () => void {
  unanswered++;
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    if (--unanswered === 0 && waiters.length) {
      const go = waiters;
      waiters = [];
      for (const resolve of go) resolve();
    }
  };
}

/**
 * Counts the request of `res` as unanswered until its headers go out (or the connection closes): the
 * app calls it first thing for every request. A stream (server-sent events) counts only until it starts.
 */
export function answerFirst(res: ServerResponse): void {
  const answered = foregroundStarted();
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    answered();
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['writeHead'];
  res.once('close', answered);
}

/** How many requests are unanswered now (see answerFirst). */
export function unansweredRequests(): number {
  return unanswered;
}

/**
 * Background work calls this between units: it returns when no request is unanswered, or after
 * `maxMs` — and then, for as long again, at once (so a steady stream of requests slows background
 * work to about half the time, never stops it).
 */
export async function yieldToForeground(maxMs = FOREGROUND_WAIT_MS): Promise<void> {
  if (!unanswered || performance.now() < freeUntil) return;
  await new Promise<void>((resolve) => {
    let done = false;
    const go = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      freeUntil = performance.now() + maxMs;
      go();
    }, maxMs);
    waiters.push(go);
  });
}

// ---- Background work, query by query --------------------------------------------------------------
// A job that is already running when a request comes in would otherwise go on, query by query, in
// turns with the request (and on SQLite, with one connection, each of its transactions makes the
// request wait). Work run as background (the job queue's handlers) is marked, and the database gives
// way for it before each query or transaction it starts outside a transaction (core/db.ts).

const background = new AsyncLocalStorage<{ maxWaitMs: number }>();

/**
 * Runs `fn` as background work: each query or transaction it (or anything it starts) begins outside
 * a transaction first waits for unanswered requests, at most `maxWaitMs` (see yieldToForeground).
 */
export function asBackground<T>(fn: () => Promise<T>, maxWaitMs = FOREGROUND_WAIT_MS): Promise<T> {
  return background.run({ maxWaitMs }, fn);
}

/** True inside asBackground (and whatever it started). */
export function isBackground(): boolean {
  return background.getStore() !== undefined;
}

/** Inside asBackground: gives way to unanswered requests as it was told to; elsewhere returns at once. */
export async function backgroundGivesWay(): Promise<void> {
  const mark = background.getStore();
  if (mark) await yieldToForeground(mark.maxWaitMs);
}
