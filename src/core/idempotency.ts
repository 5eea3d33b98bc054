/**
 * `Idempotency-Key` for POST requests of the JSON API (shared/API.md): the same key with the same
 * request answers the stored response again; the same key with another request is refused (422);
 * a key whose first request is still running answers 409.
 *
 * The claim is one INSERT: the unique index on (merchant_id, key) picks the winner, so two requests
 * racing with one key never both run. The loser reads the row. A claim that outlives `locked_until`
 * (its process crashed) may be taken over by a conditional UPDATE; `locked_until` doubles as the
 * fencing token, so a slow original can no longer overwrite its successor's result.
 * 5xx responses are not stored (the row is deleted) so the client can retry with the same key.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Db } from './db.ts';
import { isUniqueViolation, toDate } from './db.ts';
import type { Clock } from './clock.ts';
import type { Logger } from './log.ts';
import { AppError } from './errors.ts';
import { sha256Hex } from './ids.ts';

export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
/** Keys are kept at least this long (API.md: ≥ 24 h). */
export const IDEMPOTENCY_KEEP_MS = 24 * 60 * 60 * 1000;
/** How long a claim holds before another request may take over a key whose request never finished. */
export const IDEMPOTENCY_LOCK_MS = 60_000;

const KEY_FORMAT = /^[\x20-\x7e]{1,255}$/;

export interface IdempotencyRequest {
  merchantKey: number;
  /** The client's key (hashed by the store). */
  key: string;
  method: string;
  path: string;
  /** sha256 of method, path and the canonical JSON body. */
  requestHash: string;
}

export interface StoredResponse {
  status: number;
  body: string;
}

export interface Lease {
  id: number;
  lockedUntil: Date;
}

export type Claim =
  | { outcome: 'proceed'; lease: Lease }
  | { outcome: 'replay'; response: StoredResponse }
  | { outcome: 'in_use' }
  | { outcome: 'reused' };

/** Where keys live. The middleware only talks to this, so a test can swap in an unsafe one. */
export interface IdempotencyStore {
  claim(req: IdempotencyRequest): Promise<Claim>;
  /** Records the response of a claimed key (only while the lease is still ours). */
  complete(lease: Lease, response: StoredResponse): Promise<void>;
  /** Forgets a claimed key (a 5xx, or no response at all) so the client can retry with it. */
  release(lease: Lease): Promise<void>;
}

/** JSON with object keys sorted at every level: `{"b":1,"a":2}` and `{"a":2,"b":1}` hash the same. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .sort()
    .filter((k) => obj[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(',')}}`;
}

export function requestHash(method: string, path: string, body: unknown): string {
  return sha256Hex(`${method.toUpperCase()}\n${path}\n${canonicalJson(body)}`);
}

export function createIdempotencyStore({ db, clock }: { db: Db; clock: Clock }): IdempotencyStore {
  const table = () => db('idempotency_keys');
  return {
    async claim(r) {
      const key = sha256Hex(r.key); // fixed length, and the raw key never sits in the database
      for (let attempt = 0; attempt < 5; attempt++) {
        const now = clock.now();
        const lockedUntil = new Date(now.getTime() + IDEMPOTENCY_LOCK_MS);
        try {
          const [id] = await table().insert({
            merchant_id: r.merchantKey,
            key,
            method: r.method.slice(0, 8),
            path: r.path.slice(0, 255),
            request_hash: r.requestHash,
            state: 'running',
            created_at: now,
            locked_until: lockedUntil,
          });
          return { outcome: 'proceed', lease: { id: Number(id), lockedUntil } };
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
        }
        const row = await table().where({ merchant_id: r.merchantKey, key }).first();
        if (!row) continue; // released (a 5xx) between our insert and this read: claim again
        if (row.request_hash !== r.requestHash) return { outcome: 'reused' };
        if (row.state === 'done') return { outcome: 'replay', response: { status: Number(row.response_status), body: String(row.response_body ?? '') } };
        if (toDate(row.locked_until).getTime() > now.getTime()) return { outcome: 'in_use' };
        // Its request stopped without an answer (crashed process): take the key over, once.
        const taken = await table().where({ id: row.id, state: 'running' }).andWhere('locked_until', '<=', now).update({ locked_until: lockedUntil });
        return taken === 1 ? { outcome: 'proceed', lease: { id: Number(row.id), lockedUntil } } : { outcome: 'in_use' };
      }
      return { outcome: 'in_use' };
    },

    async complete(lease, response) {
      await table()
        .where({ id: lease.id, state: 'running', locked_until: lease.lockedUntil })
        .update({ state: 'done', response_status: response.status, response_body: response.body });
    },

    async release(lease) {
      await table().where({ id: lease.id, state: 'running', locked_until: lease.lockedUntil }).del();
    },
  };
}

/**
 * Deletes keys older than `keepMs` (default 24 h), in batches; a key whose request is still
 * running (lease not expired) stays. Returns how many rows went.
 */
export async function pruneIdempotencyKeys(db: Db, clock: Clock, keepMs = IDEMPOTENCY_KEEP_MS): Promise<number> {
  const now = clock.now();
  const cutoff = new Date(now.getTime() - keepMs);
  let total = 0;
  for (;;) {
    const ids = (
      (await db('idempotency_keys')
        .where('created_at', '<', cutoff)
        .andWhere((b) => b.where('state', 'done').orWhere('locked_until', '<', now))
        .select('id')
        .limit(1000)) as { id: number }[]
    ).map((r) => r.id);
    if (!ids.length) return total;
    total += await db('idempotency_keys').whereIn('id', ids).del();
  }
}

function keyInvalid(): AppError {
  return new AppError('invalid_idempotency_key', 400, 'The Idempotency-Key header must be 1 to 255 printable ASCII characters.', {
    errors: [{ field: IDEMPOTENCY_HEADER, code: 'invalid_idempotency_key', message: 'Use 1 to 255 printable ASCII characters, e.g. a UUID.' }],
  });
}

function keyInUse(): AppError {
  return new AppError('idempotency_key_in_use', 409, 'A request with this Idempotency-Key is still being processed. Retry in a moment.', {
    headers: { 'Retry-After': '1' },
  });
}

function keyReused(): AppError {
  return new AppError('idempotency_key_reused', 422, 'This Idempotency-Key was already used for a different request.', {
    errors: [{ field: IDEMPOTENCY_HEADER, code: 'idempotency_key_reused', message: 'Use a new key for a request with another body or endpoint.' }],
  });
}

/**
 * The middleware for POST requests under the authenticated, body-parsed API router
 * (`res.locals.apiMerchant` set). Requests without the header pass untouched.
 */
export function idempotency({ store, log }: { store: IdempotencyStore; log: Logger }): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'POST') return next();
    const key = req.get(IDEMPOTENCY_HEADER);
    if (key === undefined) return next();
    if (!KEY_FORMAT.test(key)) throw keyInvalid();
    const merchant = res.locals.apiMerchant;
    if (!merchant) throw new Error('idempotency() needs an authenticated API merchant');
    const path = req.originalUrl;
    const claim = await store.claim({ merchantKey: merchant.key, key, method: req.method, path, requestHash: requestHash(req.method, path, req.body) });
    if (claim.outcome === 'in_use') throw keyInUse();
    if (claim.outcome === 'reused') throw keyReused();
    if (claim.outcome === 'replay') {
      const { status, body } = claim.response;
      res
        .status(status)
        .set('Idempotent-Replayed', 'true')
        .type(status >= 400 ? 'application/problem+json' : 'application/json')
        .send(body);
      return;
    }
    holdResponseUntilStored(res, store, claim.lease, log);
    next();
  };
}

/**
 * Every JSON answer ends in res.send(string): store it first, then send, so a client that retries
 * the moment it has its answer gets the replay rather than a 409.
 */
function holdResponseUntilStored(res: Response, store: IdempotencyStore, lease: Lease, log: Logger): void {
  const send = res.send;
  let settled = false;
  res.send = function (this: Response, body?: unknown) {
    const final = body === undefined || body === null || typeof body === 'string' || Buffer.isBuffer(body);
    if (settled || !final) return send.call(this, body); // objects come back through res.json as a string
    settled = true;
    const status = this.statusCode;
    const text = body === undefined || body === null ? '' : Buffer.isBuffer(body) ? body.toString('utf8') : body;
    const recorded = status >= 500 ? store.release(lease) : store.complete(lease, { status, body: text });
    void recorded
      .catch((err) => log.error('could not record an idempotent response; the key is free again once its lock expires', { error: err }))
      .then(() => send.call(this, body))
      .catch((err) => log.error('could not send a response', { error: err }));
    return this;
  } as Response['send'];
  // A response that bypassed res.send (res.end): nothing to replay, so free the key.
  res.on('finish', () => {
    if (settled) return;
    settled = true;
    store.release(lease).catch((err) => log.error('could not release an idempotency key', { error: err }));
  });
}
