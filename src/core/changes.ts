/**
 * A signal that data changed, for in-process caches. Every state change that emits an event (and the
 * few writes that don't, like products) notifies after its transaction commits; with Redis the signal
 * is fanned out to the other processes, so their caches drop stale entries too.
 */
import type { Knex } from 'knex';
import type { Queryable } from './db.ts';

export type ChangeListener = (origin: 'local' | 'remote') => void;

export class ChangeFeed {
  private readonly listeners = new Set<ChangeListener>();

  subscribe(fn: ChangeListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  notify(origin: 'local' | 'remote' = 'local'): void {
    for (const fn of this.listeners) fn(origin);
  }

  /** Notifies once `q` commits (at once when it is not a transaction). */
  afterCommit(q: Queryable): void {
    afterCommit(q, () => this.notify());
  }
}

/** Runs `fn` once `q` commits (at once when it is not a transaction; never if it rolls back). */
export function afterCommit(q: Queryable, fn: () => void): void {
  const trx = q as Knex.Transaction;
  if (trx.isTransaction && trx.executionPromise) trx.executionPromise.then(fn, () => {});
  else fn();
}

/** A small map whose entries expire after `ttlMs` and which holds at most `max` entries. */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  constructor(private readonly ttlMs: number, private readonly max = 10_000) {}

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires < performance.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V): void {
    if (this.entries.size >= this.max) this.entries.clear();
    this.entries.set(key, { value, expires: performance.now() + this.ttlMs });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
