/**
 * Records pay-page views without slowing the page: `record` only classifies the request and queues a
 * row (the user agent parsed once per distinct string); a flush every ~50 ms writes the queue in one
 * transaction — raw rows, the links' `views_count` and the hourly rollups together, so the counters
 * always equal the rows. `close()` (graceful shutdown) writes whatever is queued: no view is lost.
 * Views change nothing a pay page shows, so they send no cache-dropping change signal; open
 * dashboards hear of them through the live feed.
 */
import type { IncomingMessage } from 'node:http';
import { inTransaction, type Db, type Trx } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import type { EventBus } from '../../core/events.ts';
import type { LiveFeed } from '../../core/live.ts';
import type { IdSealer } from '../../core/sealed-ids.ts';
import type { LinkState } from '../links/index.ts';
import { pace } from '../../core/pace.ts';
import { addHourlyStats, hourOf } from './rollups.ts';
import { UserAgentCache, cleanReferer, isPrefetch, maskIp } from './visitor.ts';

const INSERT_CHUNK = 200;
const insertSqls = new Map<number, string>();
/** `insert into link_views (…) values (?, …), (?, …)` for `rows` rows (valid on SQLite and MySQL). */
function insertSql(rows: number): string {
  let sql = insertSqls.get(rows);
  if (!sql) {
    sql = `insert into link_views (link_id, viewed_at, ip, browser, os, device, referer) values ${Array(rows).fill('(?, ?, ?, ?, ?, ?, ?)').join(', ')}`;
    insertSqls.set(rows, sql);
  }
  return sql;
}

export interface ViewedLink {
  key: number;
  id: string;
  merchantKey: number;
}

interface PendingView {
  linkKey: number;
  linkId: string;
  merchantKey: number;
  /** The merchant's public id (events name it). */
  merchantId: string;
  at: Date;
  ip: string | null;
  browser: string | null;
  os: string | null;
  device: string;
  referer: string | null;
}

export interface ViewRecorderOptions {
  db: Db;
  clock: Clock;
  log: Logger;
  live: LiveFeed;
  events: EventBus;
  viewIds: IdSealer;
  /** The links feature keeps views_count. */
  links: Pick<LinkState, 'recordViews'>;
  /** How long a view may wait in memory before it is written. */
  flushMs?: number;
  /** Views written per transaction. */
  batchSize?: number;
  /** While the database is unreachable, views queue up to this many; beyond, the oldest are dropped (and logged). */
  maxQueued?: number;
}

export class ViewRecorder {
  private queue: PendingView[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private closed = false;
  private failures = 0;
  private readonly agents = new UserAgentCache();
  private readonly flushMs: number;
  private readonly batchSize: number;
  private readonly maxQueued: number;

  constructor(private readonly deps: ViewRecorderOptions) {
    this.flushMs = deps.flushMs ?? 50;
    this.batchSize = deps.batchSize ?? 1_000;
    this.maxQueued = deps.maxQueued ?? 200_000;
  }

  /**
   * Queues a view of `link` by `req` unless it is not a person looking at the page: HEAD, prefetch
   * and prerender, bots. `ip` is the client address as the app trusts it (TRUST_PROXY). Returns
   * whether the view counts. `merchantId` is the link's merchant's public id.
   */
  record(req: IncomingMessage, ip: string | undefined, link: ViewedLink, merchantId: string): boolean {
    if (req.method !== 'GET' || isPrefetch(req.headers)) return false;
    const agent = this.agents.describe(req.headers['user-agent']);
    if (agent.bot) return false;
    this.queue.push({
      linkKey: link.key,
      linkId: link.id,
      merchantKey: link.merchantKey,
      merchantId,
      at: this.deps.clock.now(),
      ip: maskIp(ip),
      browser: agent.browser,
      os: agent.os,
      device: agent.device,
      referer: cleanReferer(req.headers.referer),
    });
    if (this.queue.length > this.maxQueued) {
      const dropped = this.queue.splice(0, this.queue.length - this.maxQueued);
      this.deps.log.error('view queue full (is the database down?); oldest views dropped', { dropped: dropped.length });
    }
    this.schedule(this.flushMs);
    return true;
  }

  /** Views waiting to be written. */
  get queued(): number {
    return this.queue.length;
  }

  /** Writes everything queued so far (waits for a write already under way). Throws if the database fails. */
  async flush(): Promise<void> {
    while (this.writing || this.queue.length) {
      if (this.writing) {
        await this.writing.catch(() => {});
        continue;
      }
      const batch = this.queue.splice(0, this.batchSize);
      this.writing = this.write(batch).then(
        () => {
          this.failures = 0;
        },
        (err) => {
          // Back in front, in order, for the next attempt: a failed write loses nothing.
          this.queue.unshift(...batch);
          throw err;
        },
      );
      try {
        await this.writing;
      } finally {
        this.writing = null;
      }
    }
  }

  /** Stops the timer and writes what is queued (graceful shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }

  private schedule(ms: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush().catch((err) => {
        this.failures++;
        this.deps.log.error('writing views failed; retrying', { error: err, queued: this.queue.length });
        // Back off while the database is away: 0.1 s, 0.2 s … up to 5 s.
        this.schedule(Math.min(100 * 2 ** (this.failures - 1), 5_000));
      });
    }, ms);
    this.timer.unref();
  }

  private async write(batch: PendingView[]): Promise<void> {
    if (!batch.length) return;
    const { db, events, viewIds } = this.deps;
    const announce = events.hasSubscribers('link.viewed');
    await inTransaction(db, async (trx) => {
      // Counters first. On InnoDB each inserted view takes a shared lock on its link through the
      // foreign key; two processes holding those and then both updating views_count deadlock
      // (ER_LOCK_DEADLOCK under concurrent load). Locking the link rows first, in key order, makes
      // the writers queue instead.
      await this.count(trx, batch);
      if (announce) {
        const rows = batch.map((v) => ({ link_id: v.linkKey, viewed_at: v.at, ip: v.ip, browser: v.browser, os: v.os, device: v.device, referer: v.referer }));
        // Someone listens for link.viewed: each view needs its id, so rows go in one at a time.
        for (let i = 0; i < rows.length; i++) {
          const [key] = await trx('link_views').insert(rows[i]);
          const v = batch[i];
          await events.emit(
            trx,
            'link.viewed',
            { merchantId: v.merchantId, linkId: v.linkId, viewId: viewIds.seal(Number(key)), viewedAt: v.at.toISOString(), browser: v.browser, os: v.os, device: v.device, referer: v.referer },
            v.merchantKey,
            { quiet: true },
          );
        }
      } else {
        // One multi-row INSERT per 200 views, its SQL text made once per size: knex's insert builder
        // (normalising every row object) cost more than the database did. On SQLite the statements
        // settle synchronously: between them the batch yields (core/pace.ts), so a batch of 1,000
        // views (~4 ms) never holds the pay pages waiting behind it for more than about a slice.
        for (let i = 0; i < batch.length; i += INSERT_CHUNK) {
          if (i > 0) await pace();
          const chunk = batch.slice(i, i + INSERT_CHUNK);
          const values: (string | number | Date | null)[] = [];
          for (const v of chunk) values.push(v.linkKey, v.at, v.ip, v.browser, v.os, v.device, v.referer);
          await trx.raw(insertSql(chunk.length), values);
        }
      }
    });
    const seen = new Map<string, number>();
    for (const v of batch) seen.set(v.linkId, v.merchantKey);
    for (const [linkId, merchantKey] of seen) this.deps.live.publish({ merchantKey, linkId, kind: 'view' });
  }

  /** Counters and rollups, in key order so concurrent writers (other processes) lock rows in the same order. */
  private async count(trx: Trx, batch: PendingView[]): Promise<void> {
    const perLink = new Map<number, number>();
    const perHour = new Map<string, { link: number; hour: number; n: number }>();
    for (const v of batch) {
      perLink.set(v.linkKey, (perLink.get(v.linkKey) ?? 0) + 1);
      const hour = hourOf(v.at);
      const k = `${v.linkKey}:${hour}`;
      const e = perHour.get(k);
      if (e) e.n++;
      else perHour.set(k, { link: v.linkKey, hour, n: 1 });
    }
    await this.deps.links.recordViews(trx, perLink);
    for (const e of [...perHour.values()].sort((a, b) => a.link - b.link || a.hour - b.hour)) {
      await addHourlyStats(trx, e.link, e.hour, { views: e.n });
    }
  }
}
