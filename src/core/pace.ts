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
