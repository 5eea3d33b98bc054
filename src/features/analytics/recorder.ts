/**
 * Records pay-page views without slowing the page: `record` only classifies the request and queues a
 * row (the user agent parsed once per distinct string); a flush every ~50 ms writes the queue in one
 * transaction — raw rows, the links' `views_count` and the hourly rollups together, so the counters
 * always equal the rows. `close()` (graceful shutdown) writes whatever is queued: no view is lost.
 * Views change nothing a pay page shows, so they send no cache-dropping change signal; open
 * dashboards hear of them through the live feed.
 */
import type { IncomingMessage } from 'node:http';
import { inTransaction, isMysql, type Db, type Trx } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import type { EventBus } from '../../core/events.ts';
import type { LiveFeed } from '../../core/live.ts';
import type { IdSealer } from '../../core/sealed-ids.ts';
import type { LinkState } from '../links/index.ts';
import { insertRows } from '../../core/bulk.ts';
import { addHourlyStats, hourOf } from './rollups.ts';
import { UserAgentCache, cleanReferer, isPrefetch, maskIp, type VisitorAgent } from './visitor.ts';

const INSERT_CHUNK = 200;
const VIEW_COLUMNS = ['link_id', 'viewed_at', 'ip', 'browser', 'os', 'device', 'referer'];

export interface ViewedLink {
  key: number;
  id: string;
  merchantKey: number;
}

/** A link views were queued for, shared by all its views in the queue. */
interface QueuedLink {
  key: number;
  id: string;
  merchantKey: number;
  /** The merchant's public id (events name it). */
  merchantId: string;
}

/**
 * Queued views, column by column: numbers in plain arrays (unboxed), strings shared where they repeat
 * (a link, a user agent's description, a masked address). A pay page under load queues thousands of
 * views a second; as objects (with a Date each) they were the recorder's largest cost after the
 * database — every one outliving a scavenge or two — and columns leave the collector almost nothing.
 */
class ViewSegment {
  readonly link: QueuedLink[] = [];
  readonly at: number[] = [];
  readonly ip: (string | null)[] = [];
  readonly agent: VisitorAgent[] = [];
  readonly referer: (string | null)[] = [];
  get length(): number {
    return this.at.length;
  }
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
  /** Oldest first; each at most batchSize views (one write). */
  private queue: ViewSegment[] = [];
  private count_ = 0;
  /** Per link and per client address: the same objects and strings for every view. */
  private readonly links = new Map<number, QueuedLink>();
  private readonly masked = new Map<string, string | null>();
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
    let queued = this.links.get(link.key);
    if (!queued || queued.id !== link.id || queued.merchantId !== merchantId) {
      queued = { key: link.key, id: link.id, merchantKey: link.merchantKey, merchantId };
      if (this.links.size >= 10_000) this.links.clear();
      this.links.set(link.key, queued);
    }
    let segment = this.queue[this.queue.length - 1];
    if (!segment || segment.length >= this.batchSize) this.queue.push((segment = new ViewSegment()));
    segment.link.push(queued);
    segment.at.push(this.deps.clock.now().getTime());
    segment.ip.push(this.maskedIp(ip));
    segment.agent.push(agent);
    segment.referer.push(cleanReferer(req.headers.referer));
    this.count_++;
    if (this.count_ > this.maxQueued) {
      // Whole oldest writes' worth at a time (the database has been away for a while by now).
      let dropped = 0;
      while (this.count_ > this.maxQueued && this.queue.length > 1) {
        const gone = this.queue.shift()!;
        dropped += gone.length;
        this.count_ -= gone.length;
      }
      this.deps.log.error('view queue full (is the database down?); oldest views dropped', { dropped });
    }
    this.schedule(this.flushMs);
    return true;
  }

  /** maskIp, remembered per address (a few thousand at most; then forgotten wholesale). */
  private maskedIp(ip: string | undefined): string | null {
    if (!ip) return null;
    let m = this.masked.get(ip);
    if (m === undefined) {
      if (this.masked.size >= 5_000) this.masked.clear();
      m = maskIp(ip);
      this.masked.set(ip, m);
    }
    return m;
  }

  /** Views waiting to be written. */
  get queued(): number {
    return this.count_;
  }

  /** Writes everything queued so far (waits for a write already under way). Throws if the database fails. */
  async flush(): Promise<void> {
    while (this.writing || this.queue.length) {
      if (this.writing) {
        await this.writing.catch(() => {});
        continue;
      }
      const batch = this.queue.shift()!;
      this.count_ -= batch.length;
      this.writing = this.write(batch).then(
        () => {
          this.failures = 0;
        },
        (err) => {
          // Back in front for the next attempt: a failed write loses nothing.
          this.queue.unshift(batch);
          this.count_ += batch.length;
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

  private async write(batch: ViewSegment): Promise<void> {
    const n = batch.length;
    if (!n) return;
    const { db, events, viewIds } = this.deps;
    const announce = events.hasSubscribers('link.viewed');
    // knex turns a Date into milliseconds on SQLite; MySQL's driver wants the Date.
    const instant = isMysql(db) ? (ms: number) => new Date(ms) : (ms: number) => ms;
    await inTransaction(db, async (trx) => {
      // Counters first. On InnoDB each inserted view takes a shared lock on its link through the
      // foreign key; two processes holding those and then both updating views_count deadlock
      // (ER_LOCK_DEADLOCK under concurrent load). Locking the link rows first, in key order, makes
      // the writers queue instead.
      await this.count(trx, batch);
      if (announce) {
        // Someone listens for link.viewed: each view needs its id, so rows go in one at a time.
        for (let i = 0; i < n; i++) {
          const link = batch.link[i];
          const agent = batch.agent[i];
          const at = new Date(batch.at[i]);
          const [key] = await trx('link_views').insert({ link_id: link.key, viewed_at: at, ip: batch.ip[i], browser: agent.browser, os: agent.os, device: agent.device, referer: batch.referer[i] });
          await events.emit(
            trx,
            'link.viewed',
            { merchantId: link.merchantId, linkId: link.id, viewId: viewIds.seal(Number(key)), viewedAt: at.toISOString(), browser: agent.browser, os: agent.os, device: agent.device, referer: batch.referer[i] },
            link.merchantKey,
            { quiet: true },
          );
        }
      } else {
        // Multi-row INSERTs of 200 views (core/bulk.ts: the SQL text made once per size; knex's insert
        // builder, normalising every row object, cost more than the database did). On SQLite the
        // statements settle synchronously: between them the batch yields (core/pace.ts), so a batch of
        // 1,000 views (~4 ms) never holds the pay pages waiting behind it for more than about a slice.
        const rows: (string | number | Date | null)[][] = new Array(n);
        for (let i = 0; i < n; i++) {
          const agent = batch.agent[i];
          rows[i] = [batch.link[i].key, instant(batch.at[i]), batch.ip[i], agent.browser, agent.os, agent.device, batch.referer[i]];
        }
        await insertRows(trx, 'link_views', VIEW_COLUMNS, rows, { rowsPerStatement: INSERT_CHUNK, yieldBetween: true });
      }
    });
    for (const link of new Set(batch.link)) this.deps.live.publish({ merchantKey: link.merchantKey, linkId: link.id, kind: 'view' });
  }

  /** Counters and rollups, in key order so concurrent writers (other processes) lock rows in the same order. */
  private async count(trx: Trx, batch: ViewSegment): Promise<void> {
    const perLink = new Map<number, number>();
    const perHour = new Map<string, { link: number; hour: number; n: number }>();
    for (let i = 0; i < batch.length; i++) {
      const key = batch.link[i].key;
      perLink.set(key, (perLink.get(key) ?? 0) + 1);
      const hour = hourOf(batch.at[i]);
      const k = `${key}:${hour}`;
      const e = perHour.get(k);
      if (e) e.n++;
      else perHour.set(k, { link: key, hour, n: 1 });
    }
    await this.deps.links.recordViews(trx, perLink);
    for (const e of [...perHour.values()].sort((a, b) => a.link - b.link || a.hour - b.hour)) {
      await addHourlyStats(trx, e.link, e.hour, { views: e.n });
    }
  }
}
