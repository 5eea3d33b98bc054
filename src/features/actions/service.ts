/**
 * After-payment actions chosen per link (`link_actions`: action id + settings). When a payment
 * succeeds, core's subscription to payment.succeeded queues one `actions.run` job per (event,
 * action) — keyed by both, so each action runs once per payment even if the event is dispatched
 * twice — and the job calls the plugin's `run` with the payment, the link and the paying customer.
 */
import type { Knex } from 'knex';
import type { Db } from '../../core/db.ts';
import type { Logger } from '../../core/log.ts';
import type { JobQueue } from '../../core/jobs.ts';
import type { EventBus, PaylinkEvent } from '../../core/events.ts';
import { PermanentJobError } from '../../core/jobs.ts';
import { ValidationError } from '../../core/errors.ts';
import type { Registries } from '../../core/plugins/registries.ts';
import type { ActionCustomer, PluginMerchant } from '../../plugin-api.ts';

export interface LinkAction {
  actionId: string;
  settings: Record<string, unknown>;
}

export interface ActionDeps {
  db: Db;
  log: Logger;
  jobs: JobQueue;
  events: EventBus;
  registries: Registries;
  /** The payment's merchant, link and customer as plugins see them. */
  context(paymentId: string): Promise<{ merchant: PluginMerchant; link: { id: string; name: string } | null; linkKey: number | null; customer: ActionCustomer | null } | null>;
}

export function createActionService(deps: ActionDeps) {
  const { db, jobs, events, registries } = deps;

  const service = {
    /** Validates settings with the action's schema (422 on `field`) and stores them in `trx`. */
    async set(trx: Knex.Transaction, linkKey: number, actionId: string, settings: unknown, field = 'after_payment'): Promise<void> {
      const action = registries.actions.get(actionId);
      if (!action) throw new ValidationError([{ field, code: 'action_unavailable', message: `The "${actionId}" action is not installed.` }]);
      const parsed = action.settings.safeParse(settings);
      if (!parsed.success) {
        throw new ValidationError(parsed.error.issues.map((i) => ({ field: [field, ...i.path.map(String)].join('.'), code: 'invalid_setting', message: i.message })));
      }
      await trx('link_actions').where({ link_id: linkKey, action_id: actionId }).del();
      await trx('link_actions').insert({ link_id: linkKey, action_id: actionId, settings: JSON.stringify(parsed.data) });
    },

    async clear(trx: Knex.Transaction, linkKey: number, actionId: string): Promise<void> {
      await trx('link_actions').where({ link_id: linkKey, action_id: actionId }).del();
    },

    async forLink(linkKey: number): Promise<LinkAction[]> {
      const rows = (await db('link_actions').where({ link_id: linkKey }).orderBy('action_id')) as { action_id: string; settings: string }[];
      return rows.map((r) => ({ actionId: r.action_id, settings: JSON.parse(r.settings) }));
    },
  };

  events.subscribe('payment.succeeded', 'core:after-payment-actions', async (event) => {
    const paymentId = String(event.payload.paymentId ?? '');
    const ctx = await deps.context(paymentId);
    if (!ctx?.linkKey) return;
    const chosen = await service.forLink(ctx.linkKey);
    if (!chosen.length) return;
    await db.transaction(async (trx) => {
      for (const a of chosen) await jobs.enqueue(trx, 'actions.run', { eventId: event.id, actionId: a.actionId }, { uniqueKey: `action:${event.id}:${a.actionId}` });
    });
  });

  jobs.define<{ eventId: string; actionId: string }>('actions.run', async ({ eventId, actionId }) => {
    const action = registries.actions.get(actionId);
    if (!action) throw new Error(`action ${actionId} is not loaded in this process`);
    const stored = await events.get(eventId);
    if (!stored || stored.type !== 'payment.succeeded') throw new PermanentJobError(`event ${eventId} is not a payment.succeeded event`);
    const { merchantId: _internal, ...event } = stored as PaylinkEvent<'payment.succeeded'> & { merchantId: number | null };
    const ctx = await deps.context(String(event.payload.paymentId ?? ''));
    if (!ctx?.linkKey) return;
    const setting = (await service.forLink(ctx.linkKey)).find((a) => a.actionId === actionId);
    if (!setting) return; // removed from the link since
    const settings = action.settings.safeParse(setting.settings);
    if (!settings.success) throw new PermanentJobError(`stored settings of ${actionId} no longer validate`);
    await action.run({ event: event as PaylinkEvent<'payment.succeeded'>, settings: settings.data, merchant: ctx.merchant, link: ctx.link, customer: ctx.customer });
  });

  return service;
}

export type ActionService = ReturnType<typeof createActionService>;
