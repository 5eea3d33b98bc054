/**
 * Reminder plans: one per (link, customer) a link was sent to with reminders. Reminder n is due n
 * intervals after the first send (schedule.ts), outside the merchant's quiet hours. The sweep
 * (`reminders.sweep`, every minute and after each enqueue) takes due plans in batches and, in one
 * transaction per batch, queues their deliveries and moves each plan on — so a reminder is queued
 * exactly once even with several processes: MySQL/MariaDB lock the batch with FOR UPDATE SKIP
 * LOCKED; SQLite's first statement takes its single write lock. Plans live in the database, so they
 * survive restarts. A payment stops its customer's plan in the payment's own transaction.
 */
import type { Knex } from 'knex';
import type { Db, Queryable } from '../../core/db.ts';
import { isMysql, rowsByKeys, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import type { JobQueue } from '../../core/jobs.ts';
import type { EventBus } from '../../core/events.ts';
import { publicId } from '../../core/ids.ts';
import { NotFoundError } from '../../core/errors.ts';
import type { DeliveryService, Delivery, QueueItem } from '../deliveries/index.ts';
import type { MerchantService } from '../merchants/index.ts';
import type { LinkService } from '../links/index.ts';
import type { CustomerService, CustomerSummary } from '../customers/index.ts';
import { dueAt, inQuietHours, outsideQuietHours, type Frequency } from './schedule.ts';
import { pace } from '../../core/pace.ts';
import { updateByKeys } from '../../core/bulk.ts';

export type PlanState = 'active' | 'completed' | 'stopped';
export type StopReason = 'paid' | 'link_closed' | 'customer_deleted' | 'cancelled' | 'replaced';

export interface ReminderPlan {
  key: number;
  id: string;
  merchantKey: number;
  linkKey: number;
  customerKey: number;
  customerId: string;
  customerName: string;
  channels: string[];
  frequency: Frequency;
  max: number;
  sent: number;
  anchorAt: Date;
  nextAt: Date | null;
  state: PlanState;
  stopReason: StopReason | null;
  createdAt: Date;
}

export interface PlanInput {
  merchantKey: number;
  linkKey: number;
  customerKey: number;
  channels: string[];
  frequency: Frequency;
  max: number;
  /** The first send (the initial message): reminder n is due n intervals later. */
  anchor: Date;
  timeZone: string;
}

/** A reminder_plans row, with its customer's id and name (read by key for the whole list). */
const fromRow = (r: any, customer: Pick<CustomerSummary, 'id' | 'name'>): ReminderPlan => ({
  key: r.id,
  id: r.public_id,
  merchantKey: r.merchant_id,
  linkKey: r.link_id,
  customerKey: r.customer_id,
  customerId: customer.id,
  customerName: customer.name,
  channels: String(r.channels).split(',').filter(Boolean),
  frequency: r.frequency,
  max: Number(r.max_count),
  sent: Number(r.sent_count),
  anchorAt: toDate(r.anchor_at),
  nextAt: toDateOrNull(r.next_at),
  state: r.state,
  stopReason: r.stop_reason ?? null,
  createdAt: toDate(r.created_at),
});

/** Upcoming reminders of an active plan: number and time, in order. */
export function upcoming(plan: ReminderPlan, timeZone: string): { n: number; at: Date }[] {
  if (plan.state !== 'active') return [];
  const out: { n: number; at: Date }[] = [];
  for (let n = plan.sent + 1; n <= plan.max; n++) out.push({ n, at: n === plan.sent + 1 && plan.nextAt ? plan.nextAt : dueAt(plan.anchorAt, plan.frequency, n, timeZone) });
  return out;
}

/** The API representation (shared/API.md "A reminder plan"), with its sent and upcoming reminders. */
export function planJson(plan: ReminderPlan, sent: Delivery[], timeZone: string) {
  return {
    id: plan.id,
    object: 'reminder_plan',
    customer_id: plan.customerId,
    channels: plan.channels,
    frequency: plan.frequency,
    max: plan.max,
    sent: plan.sent,
    next_at: plan.state === 'active' && plan.nextAt ? plan.nextAt.toISOString() : null,
    status: plan.state,
    stop_reason: plan.stopReason,
    created_at: plan.createdAt.toISOString(),
    events: {
      sent: sent.map((d) => ({ number: d.seq, channel: d.channel, status: d.status === 'sending' ? 'queued' : d.status, sent_at: d.sentAt?.toISOString() ?? null, delivery_id: d.id })),
      upcoming: upcoming(plan, timeZone).map((u) => ({ number: u.n, at: u.at.toISOString() })),
    },
  };
}

export interface ReminderDeps {
  db: Db;
  clock: Clock;
  log: Logger;
  jobs: JobQueue;
  events: EventBus;
  deliveries: DeliveryService;
  merchants: Pick<MerchantService, 'byKeys'>;
  links: Pick<LinkService, 'byKeys'>;
  /** Customers by key and their custom addresses (channels' own kinds), read in the sweep's transaction. */
  customers: Pick<CustomerService, 'summariesByKeys' | 'addressesOf'>;
  /** Plans taken per transaction (default BATCH). */
  batchSize?: number;
}

interface DuePlan {
  id: number;
  public_id: string;
  merchant_id: number;
  link_id: number;
  customer_id: number;
  channels: string;
  frequency: Frequency;
  max_count: number;
  sent_count: number;
  anchor_at: unknown;
  timezone: string;
  merchant_public_id: string;
  link_public_id: string;
  link_gone: boolean;
  customer_public_id: string;
  customer_gone: boolean;
  email: string | null;
  phone: string | null;
}

const HOUR = 3_600_000;
/**
 * Plans per transaction. Each step of a batch is one multi-row statement (a few ms for 500 rows, on
 * SQLite with the event loop held) and the batch yields between steps, so the loop is never held
 * much longer than one statement; larger batches mean fewer statements and commits.
 */
const BATCH = 500;

export function createReminderService(deps: ReminderDeps) {
  const { db, clock, log, jobs, events, deliveries, merchants, links, customers } = deps;
  const batchSize = deps.batchSize ?? BATCH;

  const listQuery = (q: Queryable) => q('reminder_plans as rp').select('rp.*');

  /** Plans from their rows: customers read by key for the whole list (one query). */
  async function fromRows(rows: any[]): Promise<ReminderPlan[]> {
    if (!rows.length) return [];
    const byCustomer = await customers.summariesByKeys(rows.map((r) => Number(r.customer_id)));
    return rows.map((r) => fromRow(r, byCustomer.get(Number(r.customer_id))!));
  }

  /** The plan columns a sweep reads. */
  const DUE_COLUMNS = ['id', 'public_id', 'merchant_id', 'link_id', 'customer_id', 'channels', 'frequency', 'max_count', 'sent_count', 'anchor_at'];

  /** Takes up to batchSize due plans inside `trx`, locking them against other processes: their rows, read as they are taken. */
  async function takeDue(trx: Knex.Transaction, now: Date): Promise<any[]> {
    if (isMysql(db)) {
      return (await trx('reminder_plans').select(DUE_COLUMNS).where('state', 'active').andWhere('next_at', '<=', now).orderBy('next_at').limit(batchSize).forUpdate().skipLocked()) as any[];
    }
    // A write first: it takes SQLite's write lock, so another process's sweep waits and then sees
    // these plans already moved on. RETURNING reads them in the same statement.
    return (await trx('reminder_plans')
      .whereIn('id', (s) => s.select('id').from('reminder_plans').where('state', 'active').andWhere('next_at', '<=', now).orderBy('next_at').limit(batchSize))
      .update({ updated_at: now })
      .returning(DUE_COLUMNS)) as any[];
  }

  /** The taken plans with their merchants, links and customers: one query each for the batch, in `trx`. */
  async function loadDue(trx: Knex.Transaction, rows: any[], now: Date): Promise<DuePlan[]> {
    if (!rows.length) return [];
    const [byMerchant, byLink, byCustomer] = await Promise.all([
      merchants.byKeys(rows.map((r) => Number(r.merchant_id)), trx),
      links.byKeys(rows.map((r) => Number(r.link_id)), { q: trx, tags: false }),
      customers.summariesByKeys(rows.map((r) => Number(r.customer_id)), trx),
    ]);
    return rows.map((r) => {
      const m = byMerchant.get(Number(r.merchant_id))!;
      const l = byLink.get(Number(r.link_id))!;
      const c = byCustomer.get(Number(r.customer_id))!;
      // Written out, not spread from the row: a spread copies each of 500 rows property by property.
      return {
        id: r.id,
        public_id: r.public_id,
        merchant_id: r.merchant_id,
        link_id: r.link_id,
        customer_id: r.customer_id,
        channels: r.channels,
        frequency: r.frequency,
        max_count: r.max_count,
        sent_count: r.sent_count,
        anchor_at: r.anchor_at,
        timezone: m.timezone,
        merchant_public_id: m.id,
        link_public_id: l.id,
        link_gone: l.deletedAt !== null || !l.active || (l.expiresAt !== null && l.expiresAt <= now),
        customer_public_id: c.id,
        customer_gone: c.deleted,
        email: c.email,
        phone: c.phone,
      } as DuePlan;
    });
  }

  /** One batch: queue the due reminders and move their plans on. Returns how many plans it took. */
  async function sweepBatch(): Promise<number> {
    const now = clock.now();
    const announce = events.hasSubscribers('reminder.sent');
    const taken = await db.transaction(
      async (trx) => {
        const due = await takeDue(trx, now);
        if (!due.length) return 0;
        await pace();
        const plans = await loadDue(trx, due, now);
        // Custom address kinds only matter to plans on a channel that needs one.
        const custom = plans.filter((p) => String(p.channels).split(',').some((c) => !['email', 'phone'].includes(deliveries.channels.get(c)?.addressKind ?? 'email')));
        const addresses = custom.length ? await customers.addressesOf(trx, custom.map((p) => p.customer_id)) : new Map<number, Record<string, string>>();
        const items: QueueItem[] = [];
        const advanced: { id: number; next: Date | null; state: PlanState }[] = [];
        const postponed: { id: number; next: Date }[] = [];
        const stopped: { id: number; reason: StopReason }[] = [];
        const sentNow: DuePlan[] = [];
        // "Now" is the same for every plan of the batch: one quiet-hours answer per time zone.
        const quiet = new Map<string, boolean>();
        const quietNow = (tz: string) => {
          let q = quiet.get(tz);
          if (q === undefined) quiet.set(tz, (q = inQuietHours(now, tz)));
          return q;
        };
        for (const p of plans) {
          if (p.link_gone || p.customer_gone) {
            stopped.push({ id: p.id, reason: p.link_gone ? 'link_closed' : 'customer_deleted' });
            continue;
          }
          if (quietNow(p.timezone)) {
            postponed.push({ id: p.id, next: outsideQuietHours(now, p.timezone) });
            continue;
          }
          const n = Number(p.sent_count) + 1;
          for (const channel of String(p.channels).split(',').filter(Boolean)) {
            const to = deliveries.channels.addressFor({ name: '', email: p.email, phone: p.phone, addresses: addresses.get(Number(p.customer_id)) }, channel);
            if (to) items.push({ merchantKey: p.merchant_id, linkKey: p.link_id, customerKey: p.customer_id, planKey: p.id, channel, kind: 'reminder', seq: n, to });
          }
          if (n >= Number(p.max_count)) {
            advanced.push({ id: p.id, next: null, state: 'completed' });
          } else {
            let next = dueAt(toDate(p.anchor_at), p.frequency, n + 1, p.timezone);
            // After downtime the next nominal time may have passed too: catch up gently, not in a burst.
            if (next <= now) next = outsideQuietHours(new Date(now.getTime() + HOUR), p.timezone);
            advanced.push({ id: p.id, next, state: 'active' });
          }
          sentNow.push(p);
        }
        // Each step a multi-row statement; other work gets its turn between them (core/pace.ts).
        await pace();
        // Queued already leased to the pump job queued with them, which sends them without claiming
        // them first (deliveries.queue): each batch's messages go out as soon as it commits.
        if (items.length) await deliveries.queue(trx, items, { leased: true });
        await pace();
        if (advanced.length) {
          await updateByKeys(trx, {
            table: 'reminder_plans',
            keys: advanced.map((a) => a.id),
            perRow: { next_at: advanced.map((a) => a.next), state: advanced.map((a) => a.state) },
            same: { sent_count: trx.raw('sent_count + 1'), updated_at: now },
          });
          await pace();
        }
        if (postponed.length) {
          await updateByKeys(trx, { table: 'reminder_plans', keys: postponed.map((p) => p.id), perRow: { next_at: postponed.map((p) => p.next) }, same: { updated_at: now } });
        }
        for (const reason of new Set(stopped.map((s) => s.reason))) {
          await trx('reminder_plans').whereIn('id', stopped.filter((s) => s.reason === reason).map((s) => s.id)).update({ state: 'stopped', stop_reason: reason, next_at: null, updated_at: now });
        }
        if (announce && sentNow.length) {
          await events.emitMany(
            trx,
            'reminder.sent',
            sentNow.map((p) => ({ payload: { merchantId: p.merchant_public_id, planId: p.public_id, linkId: p.link_public_id, customerId: p.customer_public_id, number: Number(p.sent_count) + 1, max: Number(p.max_count) }, merchantId: p.merchant_id })),
            { quiet: true },
          );
        }
        return due.length;
      },
      isMysql(db) ? { isolationLevel: 'read committed' } : undefined,
    );
    return taken;
  }

  const service = {
    /** Creates a plan in the caller's transaction; its first reminder is one interval after `anchor`. */
    async createPlan(trx: Knex.Transaction, input: PlanInput): Promise<string> {
      const now = clock.now();
      // Sending the same link to the same customer again starts their reminders afresh: one plan each.
      await trx('reminder_plans')
        .where({ link_id: input.linkKey, customer_id: input.customerKey, state: 'active' })
        .update({ state: 'stopped', stop_reason: 'replaced', next_at: null, updated_at: now });
      const id = publicId('rem');
      await trx('reminder_plans').insert({
        public_id: id,
        merchant_id: input.merchantKey,
        link_id: input.linkKey,
        customer_id: input.customerKey,
        channels: input.channels.join(','),
        frequency: input.frequency,
        max_count: input.max,
        sent_count: 0,
        anchor_at: input.anchor,
        next_at: dueAt(input.anchor, input.frequency, 1, input.timeZone),
        state: 'active',
        created_at: now,
        updated_at: now,
      });
      return id;
    },

    /**
     * Queues every due reminder, batch by batch, until none is due or `budgetMs` has passed (then
     * another sweep is queued). Returns how many plans it took.
     */
    async sweep(budgetMs = 20_000): Promise<number> {
      const started = Date.now();
      let total = 0;
      for (;;) {
        const n = await sweepBatch();
        total += n;
        if (n < batchSize) break;
        if (Date.now() - started > budgetMs) {
          await jobs.enqueue(db, 'reminders.sweep', {});
          break;
        }
        // Let other work run between batches: on SQLite every query settles without a trip through
        // the event loop, so a long sweep that never yields would hold the process until it finished.
        await pace();
      }
      if (total) log.info('reminders queued', { plans: total });
      // A safety net for messages whose pump job was lost (e.g. a database restored from backup).
      await deliveries.pumpIfStalled();
      return total;
    },

    /**
     * Stops the active plans a payment settles, in the payment's transaction: the paying customer's
     * plan on this link, or — when the payment is not tied to a customer — none. Their queued
     * reminder deliveries are cancelled too.
     */
    async stopForPayment(trx: Knex.Transaction, linkKey: number, customerKey: number | null): Promise<number> {
      if (customerKey === null) return 0;
      const now = clock.now();
      const ids = ((await trx('reminder_plans').where({ link_id: linkKey, customer_id: customerKey, state: 'active' }).select('id')) as { id: number }[]).map((r) => r.id);
      if (!ids.length) return 0;
      await trx('reminder_plans').whereIn('id', ids).andWhere('state', 'active').update({ state: 'stopped', stop_reason: 'paid', next_at: null, updated_at: now });
      await deliveries.cancelQueuedReminders(trx, ids, 'The customer paid.');
      return ids.length;
    },

    /** The merchant stops a plan by hand. */
    async stop(merchantKey: number, planId: string): Promise<void> {
      const now = clock.now();
      const n = await db('reminder_plans').where({ merchant_id: merchantKey, public_id: planId }).andWhere('state', 'active').update({ state: 'stopped', stop_reason: 'cancelled', next_at: null, updated_at: now });
      if (!n && !(await db('reminder_plans').where({ merchant_id: merchantKey, public_id: planId }).first('id'))) throw new NotFoundError('No such reminder plan.');
    },

    async forLink(linkKey: number): Promise<ReminderPlan[]> {
      return fromRows(await listQuery(db).where('rp.link_id', linkKey).orderBy('rp.id', 'desc'));
    },

    async forCustomer(merchantKey: number, customerKey: number): Promise<ReminderPlan[]> {
      return fromRows(await listQuery(db).where({ 'rp.merchant_id': merchantKey, 'rp.customer_id': customerKey }).orderBy('rp.id', 'desc'));
    },

    /** The states of plans by key (deliveries skip the reminders of a stopped plan). */
    async statesByKeys(planKeys: number[]): Promise<Map<number, PlanState>> {
      return rowsByKeys(db, 'reminder_plans', planKeys, ['state'], (r: { state: PlanState }) => r.state);
    },
  };

  jobs.define('reminders.sweep', async () => {
    await service.sweep();
  });
  return service;
}

export type ReminderService = ReturnType<typeof createReminderService>;
