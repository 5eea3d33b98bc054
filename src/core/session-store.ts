// express-session store on our own knex connection (embedded mode). Sessions in Redis use connect-redis.
import session from 'express-session';
import type { Db } from './db.ts';
import type { Clock } from './clock.ts';

const DAY = 86_400_000;

export class KnexSessionStore extends session.Store {
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly db: Db, private readonly clock: Clock, sweepEveryMs = 15 * 60_000) {
    super();
    if (sweepEveryMs > 0) {
      this.sweeper = setInterval(() => void this.sweep().catch(() => {}), sweepEveryMs);
      this.sweeper.unref();
    }
  }

  private expiry(sess: session.SessionData): number {
    const expires = sess.cookie?.expires ? new Date(sess.cookie.expires).getTime() : NaN;
    return Number.isFinite(expires) ? expires : this.clock.now().getTime() + DAY;
  }

  override get(sid: string, cb: (err: unknown, session?: session.SessionData | null) => void): void {
    this.db('sessions')
      .where({ sid })
      .andWhere('expires', '>', this.clock.now().getTime())
      .first('sess')
      .then((row) => cb(null, row ? (JSON.parse(row.sess) as session.SessionData) : null), (err) => cb(err));
  }

  override set(sid: string, sess: session.SessionData, cb?: (err?: unknown) => void): void {
    const row = { sid, sess: JSON.stringify(sess), expires: this.expiry(sess) };
    this.db('sessions')
      .insert(row)
      .onConflict('sid')
      .merge(['sess', 'expires'])
      .then(() => cb?.(), (err) => cb?.(err));
  }

  override touch(sid: string, sess: session.SessionData, cb?: (err?: unknown) => void): void {
    this.db('sessions')
      .where({ sid })
      .update({ expires: this.expiry(sess) })
      .then(() => cb?.(), (err) => cb?.(err));
  }

  override destroy(sid: string, cb?: (err?: unknown) => void): void {
    this.db('sessions')
      .where({ sid })
      .del()
      .then(() => cb?.(), (err) => cb?.(err));
  }

  async sweep(): Promise<number> {
    return this.db('sessions').where('expires', '<=', this.clock.now().getTime()).del();
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }
}

/**
 * Gives every store call a deadline: a store that stops answering (Redis behind a partition, or
 * paused) makes the request fail with 503 after `ms` instead of hanging until the client gives up.
 * Once a call has gone unanswered, the store is taken as silent: one call at a time tries it (and
 * waits up to `ms`), every other call fails at once with the same 503, so an outage costs the
 * dashboard one slow answer per `ms`, not one per request, and queues no pile of commands for the
 * store's return. Any answer, a late one too, ends that.
 */
export class DeadlineStore extends session.Store {
  /** A call went unanswered and none has answered since. */
  private silent = false;
  /** A call is trying the silent store now. */
  private tryingNow = false;

  constructor(private readonly inner: session.Store, private readonly ms = 2_000) {
    super();
  }

  /** Whether a call is trying the store after it went silent (the others fail at once meanwhile). */
  get trying(): boolean {
    return this.tryingNow;
  }

  /** Runs op(cb) and calls cb exactly once: with op's result, or with a timeout error after `ms` (at once while the store is silent and another call is trying it). */
  private deadline<R>(name: string, op: (cb: (err: unknown, result?: R) => void) => void, cb: (err: unknown, result?: R) => void): void {
    const timeout = (message: string) => Object.assign(new Error(`session store ${name} ${message}`), { code: 'ETIMEDOUT' });
    if (this.silent && this.tryingNow) return cb(timeout(`not tried: the store has not answered for a while (another call is trying it)`));
    const trial = this.silent;
    if (trial) this.tryingNow = true;
    let done = false;
    const finish = (err: unknown, result?: R) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (trial) this.tryingNow = false;
      cb(err, result);
    };
    const timer = setTimeout(() => {
      this.silent = true;
      finish(timeout(`timed out after ${this.ms} ms`));
    }, this.ms);
    try {
      op((err, result) => {
        // An answer, even after its deadline, even an error: the store is there.
        this.silent = false;
        finish(err, result);
      });
    } catch (err) {
      finish(err);
    }
  }

  override get(sid: string, cb: (err: unknown, session?: session.SessionData | null) => void): void {
    this.deadline<session.SessionData | null>('get', (done) => this.inner.get(sid, (err, s) => done(err, s)), (err, s) => cb(err ?? null, s));
  }

  override set(sid: string, sess: session.SessionData, cb?: (err?: unknown) => void): void {
    this.deadline('set', (done) => this.inner.set(sid, sess, (err) => done(err)), (err) => cb?.(err ?? undefined));
  }

  override touch(sid: string, sess: session.SessionData, cb?: (err?: unknown) => void): void {
    const inner = this.inner;
    if (!inner.touch) return cb?.();
    this.deadline('touch', (done) => inner.touch!(sid, sess, (err?: unknown) => done(err)), (err) => cb?.(err ?? undefined));
  }

  override destroy(sid: string, cb?: (err?: unknown) => void): void {
    this.deadline('destroy', (done) => this.inner.destroy(sid, (err) => done(err)), (err) => cb?.(err ?? undefined));
  }
}
