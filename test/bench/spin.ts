/**
 * Bench control only (never loaded by Paylink itself): preloaded into one bench server with
 * `--import`, it makes every HTTP request under BENCH_SPIN_PATH (default: all) cost BENCH_SPIN_US
 * microseconds more CPU before the app sees it. The Stripe / sandbox-only comparison runs it as its negative control
 * (BENCH_STRIPE_CONTROL_US): a page made that much dearer must read below the target, or the
 * comparison cannot see a cost of that size.
 *
 * BENCH_STALL_MS: the event loop is held that many ms every BENCH_STALL_EVERY_MS (100) ms, as a
 * batch write or a long collection would: the p99 pairs' negative control (BENCH_P99_CONTROL_MS).
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const stallMs = Number(process.env.BENCH_STALL_MS ?? 0);
if (stallMs > 0) {
  setInterval(() => {
    const until = performance.now() + stallMs;
    while (performance.now() < until);
  }, Number(process.env.BENCH_STALL_EVERY_MS ?? 100)).unref();
}

const spinNs = BigInt(Math.round(Number(process.env.BENCH_SPIN_US ?? 0) * 1000));
/** Only requests under this path (one merchant's pages) are made dearer. */
const spinPath = process.env.BENCH_SPIN_PATH ?? '/';
if (spinNs > 0n) {
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (this: http.Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'request' && (args[0] as http.IncomingMessage).url?.startsWith(spinPath)) {
      const until = process.hrtime.bigint() + spinNs;
      while (process.hrtime.bigint() < until);
    }
    return (emit as (this: http.Server, event: string | symbol, ...rest: unknown[]) => boolean).call(this, event, ...args);
  } as typeof emit;
}
