/**
 * Live dashboard signals: "something happened on this merchant's link" (a view was recorded, a
 * payment moved). Open dashboard pages listen over SSE and fetch what changed. Signals are delivered
 * in this process at once and, with Redis, relayed to the other processes (pub/sub), so a page
 * served by one process hears of a payment taken by another. Signals carry no data a page shows:
 * pages re-read it, scoped to the signed-in merchant, so a lost or duplicated signal is harmless.
 */
import type { ServerResponse } from 'node:http';

export interface LiveSignal {
  merchantKey: number;
  /** The link's public id, or null when the change is not tied to one link (then every page listening refreshes). */
  linkId: string | null;
  /** `view`, or the event type (`payment.succeeded`, `link.updated`, …). */
  kind: string;
}

export type LiveListener = (signal: LiveSignal) => void;

export class LiveFeed {
  private readonly listeners = new Map<number, Set<LiveListener>>();
  private readonly streams = new Set<ServerResponse>();
  private relay: ((signal: LiveSignal) => void) | null = null;

  /** Where signals published here go besides local listeners (Redis, in scaled mode). */
  relayTo(fn: (signal: LiveSignal) => void): void {
    this.relay = fn;
  }

  listen(merchantKey: number, fn: LiveListener): () => void {
    let set = this.listeners.get(merchantKey);
    if (!set) this.listeners.set(merchantKey, (set = new Set()));
    set.add(fn);
    return () => {
      set!.delete(fn);
      if (!set!.size) this.listeners.delete(merchantKey);
    };
  }

  /** A change made in this process: deliver here and relay to the others. */
  publish(signal: LiveSignal): void {
    this.deliver(signal);
    this.relay?.(signal);
  }

  /** A signal from another process (or this one): to local listeners only. */
  deliver(signal: LiveSignal): void {
    const set = this.listeners.get(signal.merchantKey);
    if (!set) return;
    for (const fn of set) {
      try {
        fn(signal);
      } catch {
        // A listener's failure (a closed socket) must not stop the others.
      }
    }
  }

  /** Long-lived responses (SSE) to end on shutdown, so the server can close; browsers reconnect. */
  track(res: ServerResponse): void {
    this.streams.add(res);
    res.once('close', () => this.streams.delete(res));
  }

  endStreams(): void {
    for (const res of this.streams) res.end();
    this.streams.clear();
  }

  get streamCount(): number {
    return this.streams.size;
  }
}
