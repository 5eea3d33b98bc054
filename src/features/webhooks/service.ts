/**
 * Outgoing webhooks (Standard Webhooks). A merchant's endpoints subscribe to event types (or all);
 * each outbox event of an offered type fans out, in one job, to one `webhook_messages` row per
 * subscribed endpoint — its public id is the `webhook-id`, the body is fixed then — and a
 * `webhooks.deliver` job per message. Each delivery job makes one try and records it:
 *
 *   message: pending → succeeded (2xx)
 *                    → pending again, the next try scheduled (now, 5 s, 5 min, 30 min, 2 h, 5 h,
 *                      10 h, 14 h, 20 h, 24 h, each plus up to 10% jitter; 429/503 with
 *                      Retry-After: then instead)
 *                    → failed (tries used up, or 410 Gone)
 *                    → cancelled (its endpoint was disabled or deleted before it went out)
 *   endpoint: enabled ⇄ disabled (by hand; 410 Gone → `gone`; failing for 5 days with no success
 *             → `failing`, and the merchant is emailed)
 *
 * No network call runs inside a transaction: a try reads, calls out, then records its attempt row,
 * the message's new state and the next try's job in one transaction, conditional on the message
 * still waiting for that try (a worker that lost its lease records nothing twice). A process killed
 * mid-try loses nothing: the job's lease expires and the try runs again (same webhook-id).
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import ipaddr from 'ipaddr.js';
import type { Db, Queryable } from '../../core/db.ts';
import { toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import type { JobQueue } from '../../core/jobs.ts';
import type { EventBus, EventType, PaylinkEvent } from '../../core/events.ts';
import { TtlCache, type ChangeFeed } from '../../core/changes.ts';
import type { Sealer } from '../../core/encryption.ts';
import { publicId, sha256Hex } from '../../core/ids.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { listQuerySchema, pageByIdDesc, type Page } from '../../core/pagination.ts';
import type { Merchant, MerchantService } from '../merchants/index.ts';
import type { MerchantNotice } from '../deliveries/index.ts';
import { isWebhookEventType, webhookEventTypes, type DataBuilder } from './data.ts';
import { newSecret, type Sender } from './send.ts';

/** Delay before each try: the first at once, then 5 s, 5 min, … 24 h (10 tries, about 3 days). */
export const RETRY_SCHEDULE_MS = [0, 5_000, 5 * 60_000, 30 * 60_000, 2 * 3600_000, 5 * 3600_000, 10 * 3600_000, 14 * 3600_000, 20 * 3600_000, 24 * 3600_000];
/** Up to this fraction of a delay is added at random, so retries of many messages spread out. */
export const RETRY_JITTER = 0.1;
/** Failing this long with no success disables an endpoint. */
export const DISABLE_AFTER_MS = 5 * 86_400_000;
/** A healthy endpoint's last success is written at most this often. */
const HEALTH_WRITE_EVERY_MS = 60_000;
/** How long "this merchant has no enabled endpoint" is believed without asking again. */
const NO_ENDPOINTS_TTL_MS = 2_000;
/** After a rotation the old secret keeps signing this long. */
export const ROTATION_OVERLAP_MS = 86_400_000;
const MAX_RETRY_AFTER_MS = 24 * 3600_000;
export const TEST_EVENT_TYPE = 'webhook.test';

export type DisabledReason = 'gone' | 'failing' | null;

export interface WebhookEndpoint {
  key: number;
  id: string;
  merchantKey: number;
  url: string;
  description: string;
  /** `['*']` or event types. */
  events: string[];
  enabled: boolean;
  disabledReason: DisabledReason;
  failingSince: Date | null;
  lastSuccessAt: Date | null;
  previousSecretUntil: Date | null;
  createdAt: Date;
}

export type MessageStatus = 'pending' | 'succeeded' | 'failed' | 'cancelled';

export interface WebhookAttempt {
  key: number;
  id: string;
  messageId: string;
  eventId: string;
  eventType: string;
  number: number;
  outcome: 'succeeded' | 'failed';
  statusCode: number | null;
  latencyMs: number;
  response: string | null;
  error: string | null;
  nextRetryAt: Date | null;
  createdAt: Date;
  messageStatus: MessageStatus;
}

const endpointFromRow = (r: any): WebhookEndpoint => ({
  key: Number(r.id),
  id: r.public_id,
  merchantKey: Number(r.merchant_id),
  url: r.url,
  description: r.description ?? '',
  events: JSON.parse(r.events),
  enabled: Boolean(r.enabled),
  disabledReason: r.disabled_reason ?? null,
  failingSince: toDateOrNull(r.failing_since),
  lastSuccessAt: toDateOrNull(r.last_success_at),
  previousSecretUntil: toDateOrNull(r.previous_secret_until),
  createdAt: toDate(r.created_at),
});

const attemptFromRow = (r: any): WebhookAttempt => ({
  key: Number(r.id),
  id: r.public_id,
  messageId: r.message_public_id,
  eventId: r.event_id,
  eventType: r.event_type,
  number: Number(r.number),
  outcome: r.outcome,
  statusCode: r.status_code === null || r.status_code === undefined ? null : Number(r.status_code),
  latencyMs: Number(r.latency_ms),
  response: r.response ?? null,
  error: r.error ?? null,
  nextRetryAt: toDateOrNull(r.next_retry_at),
  createdAt: toDate(r.created_at),
  messageStatus: r.message_status,
});

/** The API representation (API.md "Webhook endpoints"); `secret` only right after create/rotate. */
export function endpointJson(e: WebhookEndpoint, secret?: string) {
  return {
    id: e.id,
    object: 'webhook_endpoint',
    url: e.url,
    description: e.description,
    events: e.events,
    enabled: e.enabled,
    disabled_reason: e.disabledReason,
    failing_since: e.failingSince?.toISOString() ?? null,
    created_at: e.createdAt.toISOString(),
    ...(secret ? { secret } : {}),
  };
}

export function attemptJson(a: WebhookAttempt) {
  return {
    id: a.id,
    object: 'webhook_attempt',
    message_id: a.messageId,
    event_id: a.eventId,
    event_type: a.eventType,
    attempt: a.number,
    status: a.outcome,
    status_code: a.statusCode,
    latency_ms: a.latencyMs,
    response: a.response,
    error: a.error,
    next_retry_at: a.nextRetryAt?.toISOString() ?? null,
    created_at: a.createdAt.toISOString(),
  };
}

export interface WebhookDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  jobs: JobQueue;
  events: EventBus;
  /** Seals signing secrets at rest (a key derived from the install secret). */
  sealer: Sealer;
  merchants: Pick<MerchantService, 'keyOf' | 'getByKey'>;
  data: DataBuilder;
  send: Sender;
  /** http:// endpoints are accepted (not production, or the install allows private addresses). */
  allowHttp: boolean;
  /** PAYLINK_WEBHOOKS_ALLOW_PRIVATE: endpoints may be on loopback/private addresses. */
  allowPrivate: boolean;
  /** Tells other processes (with Redis) that an endpoint was created or enabled, and hears of theirs. */
  changes?: ChangeFeed;
  /** Emails the merchant (deliveries' notifyMerchant). */
  notifyMerchant: (trx: Knex.Transaction, notice: MerchantNotice) => Promise<void>;
  baseUrl: string;
  /** For the jitter (tests pin it). */
  random?: () => number;
}

/** An address that is never a merchant's server: loopback, private, link-local/metadata, CGNAT, … */
export function isPrivateHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal') || host === 'metadata.google.internal') return true;
  if (!ipaddr.isValid(host)) return false;
  return ipaddr.parse(host).range() !== 'unicast';
}

const eventsField = z
  .array(z.string(), { error: 'events must be a list of event types, or ["*"] for all.' })
  .min(1, 'Choose at least one event type, or ["*"] for all.')
  .max(50)
  .superRefine((list, ctx) => {
    if (list.includes('*') && list.length > 1) ctx.addIssue({ code: 'custom', message: '"*" means all events: send it alone.' });
    for (const t of list) if (t !== '*' && !isWebhookEventType(t)) ctx.addIssue({ code: 'custom', message: `Unknown event type "${t}". Known: ${webhookEventTypes().join(', ')}.` });
  })
  .transform((list) => [...new Set(list)]);

const endpointInput = z.strictObject({
  url: z.string({ error: 'Enter the URL that should receive events.' }).trim().min(1, 'Enter the URL that should receive events.').max(2048, 'The URL is too long (2048 characters at most).'),
  description: z.string({ error: 'description must be text.' }).trim().max(500, 'At most 500 characters.').optional(),
  events: eventsField.optional(),
  enabled: z.boolean({ error: 'enabled must be true or false.' }).optional(),
});

const attemptsQuery = listQuerySchema.extend({ status: z.enum(['succeeded', 'failed'], { error: 'status must be succeeded or failed.' }).optional() });

export function createWebhookService(deps: WebhookDeps) {
  const { db, clock, log, jobs, sealer, merchants } = deps;
  const random = deps.random ?? Math.random;
  const context = (merchantKey: number, endpointId: string) => `webhook:${merchantKey}:${endpointId}`;

  /** What is wrong with a URL, or null: checked with the other fields, so a form shows every problem at once. */
  function urlProblem(raw: string): { code: string; message: string } | null {
    if (!URL.canParse(raw)) return { code: 'invalid_url', message: 'Enter a full URL such as https://example.com/webhooks/paylink.' };
    const u = new URL(raw);
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && deps.allowHttp)) return { code: 'https_required', message: deps.allowHttp ? 'The URL must start with https:// or http://.' : 'The URL must start with https://.' };
    if (u.username || u.password) return { code: 'invalid_url', message: 'Leave user names and passwords out of the URL.' };
    if (u.hash) return { code: 'invalid_url', message: 'Leave the #fragment out of the URL.' };
    if (!deps.allowPrivate && isPrivateHost(u.hostname)) return { code: 'private_address', message: 'This address is private or reserved: webhooks only go to servers on the public internet.' };
    return null;
  }

  /** Parses the input; every field's problem (the URL's included) in one 422. */
  function parseInput<S extends z.ZodType<{ url?: string }>>(schema: S, raw: unknown): z.infer<S> {
    const checked = schema.superRefine((v, ctx) => {
      const p = v.url === undefined ? null : urlProblem(v.url);
      if (p) ctx.addIssue({ code: 'custom', path: ['url'], message: p.message, params: { code: p.code } });
    });
    const r = checked.safeParse(raw ?? {});
    if (r.success) return r.data as z.infer<S>;
    const errors = r.error.issues.map((i) => ({ field: i.path.map(String).join('.') || '_', code: (i as { params?: { code?: string } }).params?.code ?? i.code, message: i.message }));
    throw new ValidationError(errors);
  }
  const normalUrl = (raw: string) => new URL(raw).toString();

  const scoped = (merchantKey: number) => db('webhook_endpoints').where('merchant_id', merchantKey);

  // Every event asks whether its merchant has an enabled endpoint, and most have none: that answer is
  // kept for a moment. Only an endpoint created or enabled can make it wrong, so this process forgets
  // it then and tells the others (the change feed; with Redis it reaches every process), which forget
  // theirs when they hear of a change elsewhere — and after the TTL in any case.
  const withoutEndpoints = new TtlCache<true>(NO_ENDPOINTS_TTL_MS);
  deps.changes?.subscribe((origin) => origin === 'remote' && withoutEndpoints.clear());
  function endpointsMayHaveAppeared(merchantKey: number): void {
    withoutEndpoints.delete(String(merchantKey));
    deps.changes?.notify();
  }

  async function getRow(merchantKey: number, id: string) {
    const row = await scoped(merchantKey).andWhere('public_id', id).first();
    if (!row) throw new NotFoundError('No such webhook endpoint.');
    return row;
  }

  // Opened secrets by endpoint and sealed value (a rotation seals a new one, so an entry never goes
  // stale): every delivery signs, and opening costs a key derivation and a decryption.
  const opened = new Map<string, string>();
  const open = (row: any, sealed: string): string => {
    const key = `${row.public_id}:${sealed}`;
    let secret = opened.get(key);
    if (secret === undefined) {
      secret = sealer.open(sealed, context(Number(row.merchant_id), row.public_id));
      if (opened.size >= 1_000) opened.delete(opened.keys().next().value!);
      opened.set(key, secret);
    }
    return secret;
  };

  function signingSecrets(row: any, now: Date): string[] {
    const out = [open(row, row.secret)];
    const until = toDateOrNull(row.previous_secret_until);
    if (row.previous_secret && until && until > now) out.push(open(row, row.previous_secret));
    return out;
  }

  const subscribes = (e: WebhookEndpoint, type: string) => e.events.includes('*') || e.events.includes(type);

  /** One message per endpoint for an event, and its first try; a repeat (handler re-run) adds nothing. */
  async function queueMessages(trx: Knex.Transaction, endpoints: WebhookEndpoint[], eventId: string, type: string, body: string): Promise<string[]> {
    const now = clock.now();
    const ids: string[] = [];
    for (const e of endpoints) {
      // Derived from (event, endpoint): the same on a re-run, so the insert and the job are no-ops then.
      const id = `msg_${sha256Hex(`${eventId}:${e.id}`).slice(0, 26)}`;
      await trx('webhook_messages')
        .insert({ public_id: id, endpoint_id: e.key, merchant_id: e.merchantKey, event_id: eventId, event_type: type, body, status: 'pending', attempts: 0, next_attempt_at: now, created_at: now, updated_at: now })
        .onConflict(['endpoint_id', 'event_id'])
        .ignore();
      await jobs.enqueue(trx, 'webhooks.deliver', { message: id, attempt: 1 }, { uniqueKey: `webhook:${id}:1`, maxAttempts: 5 });
      ids.push(id);
    }
    return ids;
  }

  /** The envelope: `{ id, type, timestamp, data }`. */
  const envelope = (id: string, type: string, at: Date, data: unknown) => JSON.stringify({ id, type, timestamp: at.toISOString(), data });

  async function fanOut(event: PaylinkEvent): Promise<void> {
    const merchantPublicId = (event.payload as { merchantId?: string }).merchantId;
    if (!merchantPublicId) return;
    const merchantKey = await merchants.keyOf(merchantPublicId);
    if (merchantKey === null) return;
    const endpoints = ((await scoped(merchantKey).andWhere('enabled', true)) as any[]).map(endpointFromRow).filter((e) => subscribes(e, event.type));
    if (!endpoints.length) return;
    const merchant = await merchants.getByKey(merchantKey);
    if (!merchant) return;
    const body = envelope(event.id, event.type, event.createdAt, await deps.data(merchant, event.type, event.payload));
    await db.transaction((trx) => queueMessages(trx, endpoints, event.id, event.type, body));
  }

  /** When the try after try `n` runs (429/503 with Retry-After: then), or null when tries are used up. */
  function nextTryAt(n: number, now: Date, status: number | null, retryAfter: string | string[] | undefined): Date | null {
    if (n >= RETRY_SCHEDULE_MS.length) return null;
    if ((status === 429 || status === 503) && typeof retryAfter === 'string') {
      const ms = parseRetryAfter(retryAfter, now);
      if (ms !== null) return new Date(now.getTime() + Math.min(ms, MAX_RETRY_AFTER_MS));
    }
    const delay = RETRY_SCHEDULE_MS[n];
    return new Date(now.getTime() + Math.round(delay * (1 + random() * RETRY_JITTER)));
  }

  /** One try of one message (the `webhooks.deliver` job). */
  async function deliver(messageId: string, n: number): Promise<void> {
    const m = await db('webhook_messages').where('public_id', messageId).first();
    if (!m || m.status !== 'pending' || Number(m.attempts) >= n) return;
    const row = await db('webhook_endpoints').where('id', m.endpoint_id).first();
    const now = clock.now();
    if (!row || !row.enabled) {
      await db('webhook_messages').where({ id: m.id, status: 'pending' }).update({ status: 'cancelled', next_attempt_at: null, updated_at: now });
      return;
    }
    const result = await deps.send({ url: row.url, id: m.public_id, timestamp: Math.floor(now.getTime() / 1000), body: m.body, secrets: signingSecrets(row, now) });
    const at = clock.now();
    const code = result.statusCode;
    const ok = code !== null && code >= 200 && code < 300;
    const gone = code === 410;
    const next = ok || gone ? null : nextTryAt(n, at, code, result.headers['retry-after']);
    const error = ok ? null : result.error ?? (code !== null && code >= 300 && code < 400 ? `Redirect (${code}) not followed.` : `HTTP ${code}`);
    await db.transaction(async (trx) => {
      const updated = await trx('webhook_messages')
        .where({ id: m.id, status: 'pending', attempts: n - 1 })
        .update({ status: ok ? 'succeeded' : next ? 'pending' : 'failed', attempts: n, next_attempt_at: next, updated_at: at });
      if (updated !== 1) return; // another worker recorded this try
      await trx('webhook_attempts').insert({
        public_id: publicId('wha'),
        message_id: m.id,
        endpoint_id: row.id,
        number: n,
        outcome: ok ? 'succeeded' : 'failed',
        status_code: code,
        latency_ms: result.latencyMs,
        response: result.response,
        error: error?.slice(0, 500) ?? null,
        next_retry_at: next,
        created_at: at,
      });
      if (next) await jobs.enqueue(trx, 'webhooks.deliver', { message: m.public_id, attempt: n + 1 }, { runAt: next, uniqueKey: `webhook:${m.public_id}:${n + 1}`, maxAttempts: 5 });
      await recordHealth(trx, row, ok, gone, at);
    });
  }

  /** The endpoint's health after a try: a success clears "failing since"; 410 or 5 days failing disables it. */
  async function recordHealth(trx: Knex.Transaction, row: any, ok: boolean, gone: boolean, at: Date): Promise<void> {
    const ep = () => trx('webhook_endpoints').where('id', row.id);
    if (ok) {
      // Healthy and seen healthy within the minute: nothing to record (a busy endpoint would otherwise
      // take one write per delivery).
      const last = toDateOrNull(row.last_success_at);
      if (row.failing_since === null && last && at.getTime() - last.getTime() < HEALTH_WRITE_EVERY_MS) return;
      await ep().update({ failing_since: null, last_success_at: at, updated_at: at });
      return;
    }
    if (gone) {
      const n = await ep().andWhere('enabled', true).update({ enabled: false, disabled_reason: 'gone', updated_at: at });
      if (n) await notifyDisabled(trx, row, 'gone', at);
      return;
    }
    await ep().whereNull('failing_since').update({ failing_since: at, updated_at: at });
    const since = toDateOrNull(row.failing_since);
    if (since && at.getTime() - since.getTime() >= DISABLE_AFTER_MS) {
      const n = await ep().andWhere('enabled', true).update({ enabled: false, disabled_reason: 'failing', updated_at: at });
      if (n) await notifyDisabled(trx, row, 'failing', at);
    }
  }

  async function notifyDisabled(trx: Knex.Transaction, row: any, reason: 'gone' | 'failing', at: Date): Promise<void> {
    const why =
      reason === 'gone'
        ? 'it answered 410 Gone, which means the receiver no longer exists'
        : `every delivery to it has failed since ${toDate(row.failing_since).toISOString().slice(0, 16).replace('T', ' ')} UTC (5 days with no success)`;
    await deps.notifyMerchant(trx, {
      merchantKey: Number(row.merchant_id),
      key: `webhook-disabled:${row.public_id}:${at.getTime()}`,
      subject: 'A webhook endpoint was disabled',
      text: `We disabled your webhook endpoint ${row.url} because ${why}.\n\nEvents are no longer sent to it. Once it works again, enable it in Settings → Webhooks:\n${deps.baseUrl}/app/settings/webhooks/${row.public_id}\n`,
    });
  }

  const listAttemptsQuery = (endpointKey: number) =>
    db('webhook_attempts as a')
      .join('webhook_messages as m', 'm.id', 'a.message_id')
      .where('a.endpoint_id', endpointKey)
      .select('a.*', 'm.public_id as message_public_id', 'm.event_id', 'm.event_type', 'm.status as message_status');

  const service = {
    eventTypes: webhookEventTypes,

    async list(merchantKey: number, rawQuery: unknown = {}): Promise<Page<WebhookEndpoint>> {
      const page = parseBody(listQuerySchema, rawQuery);
      let afterKey: number | null = null;
      if (page.starting_after) {
        const anchor = await scoped(merchantKey).andWhere('public_id', page.starting_after).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of one of your webhook endpoints.' }]);
        afterKey = Number(anchor.id);
      }
      return pageByIdDesc(scoped(merchantKey).select('*'), { limit: page.limit, afterKey }, (rows) => rows.map(endpointFromRow));
    },

    async get(merchantKey: number, id: string): Promise<WebhookEndpoint> {
      return endpointFromRow(await getRow(merchantKey, id));
    },

    /** Creates an endpoint; the secret is in this answer only. */
    async create(merchantKey: number, raw: unknown): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
      const input = parseInput(endpointInput, raw);
      const url = normalUrl(input.url);
      const now = clock.now();
      const id = publicId('we');
      const secret = newSecret();
      await db('webhook_endpoints').insert({
        public_id: id,
        merchant_id: merchantKey,
        url,
        description: input.description ?? '',
        events: JSON.stringify(input.events ?? ['*']),
        enabled: input.enabled ?? true,
        disabled_reason: null,
        secret: sealer.seal(secret, context(merchantKey, id)),
        created_at: now,
        updated_at: now,
      });
      endpointsMayHaveAppeared(merchantKey);
      return { endpoint: await service.get(merchantKey, id), secret };
    },

    async update(merchantKey: number, id: string, raw: unknown): Promise<WebhookEndpoint> {
      const row = await getRow(merchantKey, id);
      const input = parseInput(endpointInput.partial(), raw);
      const patch: Record<string, unknown> = { updated_at: clock.now() };
      if (input.url !== undefined) patch.url = normalUrl(input.url);
      if (input.description !== undefined) patch.description = input.description;
      if (input.events !== undefined) patch.events = JSON.stringify(input.events);
      if (input.enabled !== undefined) {
        patch.enabled = input.enabled;
        // Enabling again starts afresh: no reason, and 5 more days before an automatic disable.
        if (input.enabled && !row.enabled) Object.assign(patch, { disabled_reason: null, failing_since: null });
        if (!input.enabled) patch.disabled_reason = null;
      }
      await db('webhook_endpoints').where('id', row.id).update(patch);
      if (input.enabled) endpointsMayHaveAppeared(merchantKey);
      return service.get(merchantKey, id);
    },

    async remove(merchantKey: number, id: string): Promise<void> {
      const row = await getRow(merchantKey, id);
      await db.transaction(async (trx) => {
        const messages = trx('webhook_messages').select('id').where('endpoint_id', row.id);
        await trx('webhook_attempts').whereIn('message_id', messages).del();
        await trx('webhook_messages').where('endpoint_id', row.id).del();
        await trx('webhook_endpoints').where('id', row.id).del();
      });
    },

    /** A new secret (shown once); the old one keeps signing alongside it for 24 h. */
    async rotate(merchantKey: number, id: string): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
      const row = await getRow(merchantKey, id);
      const now = clock.now();
      const secret = newSecret();
      await db('webhook_endpoints')
        .where('id', row.id)
        .update({ secret: sealer.seal(secret, context(merchantKey, id)), previous_secret: row.secret, previous_secret_until: new Date(now.getTime() + ROTATION_OVERLAP_MS), updated_at: now });
      return { endpoint: await service.get(merchantKey, id), secret };
    },

    /** Newest first; `status` filters by outcome. */
    async attempts(merchantKey: number, id: string, rawQuery: unknown = {}): Promise<Page<WebhookAttempt>> {
      const row = await getRow(merchantKey, id);
      const q = parseBody(attemptsQuery, rawQuery);
      const query = listAttemptsQuery(Number(row.id));
      if (q.status) query.andWhere('a.outcome', q.status);
      let afterKey: number | null = null;
      if (q.starting_after) {
        const anchor = await db('webhook_attempts').where({ endpoint_id: row.id, public_id: q.starting_after }).first('id');
        if (!anchor) throw new ValidationError([{ field: 'starting_after', code: 'invalid_cursor', message: 'starting_after must be the id of an attempt of this endpoint.' }]);
        afterKey = Number(anchor.id);
      }
      return pageByIdDesc(query, { limit: q.limit, afterKey, idColumn: 'a.id' }, (rows) => rows.map(attemptFromRow));
    },

    /** Messages still waiting for a try (the dashboard's "scheduled"). */
    async pendingCount(merchantKey: number, id: string): Promise<number> {
      const row = await getRow(merchantKey, id);
      const [{ n }] = (await db('webhook_messages').where({ endpoint_id: row.id, status: 'pending' }).count({ n: '*' })) as { n: number | string }[];
      return Number(n);
    },

    /** Sends one event's message to this endpoint again, now (same webhook-id: receivers dedupe by it). */
    async resend(merchantKey: number, id: string, messageId: string): Promise<void> {
      const row = await getRow(merchantKey, id);
      if (!row.enabled) throw new ValidationError([{ field: 'endpoint', code: 'endpoint_disabled', message: 'Enable the endpoint before resending to it.' }]);
      const m = await db('webhook_messages').where({ endpoint_id: row.id, public_id: messageId }).first();
      if (!m) throw new NotFoundError('No such message for this endpoint.');
      if (m.status === 'pending') throw new ValidationError([{ field: 'message', code: 'message_pending', message: 'This event is still being delivered.' }]);
      const n = Number(m.attempts) + 1;
      const now = clock.now();
      await db.transaction(async (trx) => {
        await trx('webhook_messages').where({ id: m.id, attempts: n - 1 }).update({ status: 'pending', next_attempt_at: now, updated_at: now });
        await jobs.enqueue(trx, 'webhooks.deliver', { message: m.public_id, attempt: n }, { uniqueKey: `webhook:${m.public_id}:${n}`, maxAttempts: 5 });
      });
    },

    /** Sends a `webhook.test` event to this endpoint only. Returns the message id. */
    async sendTest(merchant: Merchant, id: string): Promise<string> {
      const e = endpointFromRow(await getRow(merchant.key, id));
      if (!e.enabled) throw new ValidationError([{ field: 'endpoint', code: 'endpoint_disabled', message: 'Enable the endpoint before sending to it.' }]);
      const eventId = publicId('evt');
      const body = envelope(eventId, TEST_EVENT_TYPE, clock.now(), { object: 'test', message: `A test event from Paylink for ${merchant.name}.`, merchant_id: merchant.id });
      const [messageId] = await db.transaction((trx) => queueMessages(trx, [e], eventId, TEST_EVENT_TYPE, body));
      return messageId;
    },

    /** Counts of messages by status (tests, health). */
    async messageCounts(endpointKey?: number): Promise<Record<MessageStatus, number>> {
      const q = db('webhook_messages').select('status').count({ n: '*' }).groupBy('status');
      if (endpointKey !== undefined) q.where('endpoint_id', endpointKey);
      const out: Record<MessageStatus, number> = { pending: 0, succeeded: 0, failed: 0, cancelled: 0 };
      for (const r of (await q) as { status: MessageStatus; n: number | string }[]) out[r.status] = Number(r.n);
      return out;
    },

    deliver,
  };

  jobs.define<{ message: string; attempt: number }>('webhooks.deliver', (p) => deliver(p.message, p.attempt));
  // A run is queued only for events of merchants with an enabled endpoint (most have none).
  // Only the merchant decides, so a batch of events asks once per merchant.
  const hasEndpoints = async (merchantId: number | null, q: Queryable) => {
    if (merchantId === null || withoutEndpoints.get(String(merchantId))) return false;
    const found = Boolean(await q('webhook_endpoints').where({ merchant_id: merchantId, enabled: true }).first('id'));
    if (!found) withoutEndpoints.set(String(merchantId), true);
    return found;
  };
  for (const type of webhookEventTypes()) {
    deps.events.subscribe(type as EventType, `webhooks:${type}`, (e) => fanOut(e), () => true, { merchant: hasEndpoints });
  }
  log.debug('webhooks ready', { eventTypes: webhookEventTypes().length });
  return service;
}

/** `Retry-After`: seconds, or an HTTP date; null when it is neither. */
export function parseRetryAfter(value: string, now: Date): number | null {
  const v = value.trim();
  if (/^\d{1,9}$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now.getTime());
}

export type WebhookService = ReturnType<typeof createWebhookService>;
