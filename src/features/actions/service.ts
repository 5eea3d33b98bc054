/**
 * After-payment actions chosen per link (`link_actions`: action id + settings). Any registered action
 * can be enabled on a link, from the link form or the API (`after_payment`), with settings checked by
 * the action's own schema (and its `check`) and messages by the field. When a payment succeeds,
 * core's subscription to payment.succeeded queues one `actions.run` job per (event, action) — keyed by
 * both, so each action runs once per payment even if the event is dispatched twice — and the job calls
 * the plugin's `run` with the payment, the link, the paying customer and the payer.
 *
 * Changing a link's actions is a plan: the actions to set, and which others to remove (all of them
 * for the API's `actions` list; only the ones shown for the form; only the named one for an action's
 * API shorthand). Plans are validated before anything is written, then committed in the caller's
 * transaction.
 */
import type { Knex } from 'knex';
import type { Db } from '../../core/db.ts';
import { inTransaction } from '../../core/db.ts';
import type { Logger } from '../../core/log.ts';
import type { JobQueue } from '../../core/jobs.ts';
import type { EventBus, PaylinkEvent } from '../../core/events.ts';
import { PermanentJobError } from '../../core/jobs.ts';
import { ValidationError, type FieldError } from '../../core/errors.ts';
import type { Registries } from '../../core/plugins/registries.ts';
import { ProviderError, type ActionCustomer, type ActionPayer, type AfterPaymentAction, type PluginMerchant } from '../../plugin-api.ts';

export interface LinkAction {
  actionId: string;
  settings: Record<string, unknown>;
}

/**
 * One action's settings as given (API body or posted form), with where its messages go: `at` names
 * the choice itself, `setting(path)` a settings field ('' for the settings as a whole).
 */
export interface ActionEntry {
  actionId: string;
  settings: unknown;
  at: string;
  setting(path: string): string;
}

/** An action whose settings passed its schema and check. */
export interface PreparedAction {
  actionId: string;
  label: string;
  settings: unknown;
  requiresCustomer: boolean;
  /** Where a message about the choice itself goes (e.g. "needs a customer"). */
  at: string;
}

export interface AfterPaymentPlan {
  set: PreparedAction[];
  /** Other actions the plan removes from the link: every one (`all`) or these ids. */
  remove: 'all' | string[];
}

/** Who the link is for: nobody, several customers (a send to many or a tag), or one customer. */
export type LinkAudience = 'none' | 'many' | 'one';

export interface ActionDeps {
  db: Db;
  log: Logger;
  jobs: JobQueue;
  events: EventBus;
  registries: Registries;
  /** The payment's merchant, link, customer and payer as plugins see them. */
  context(paymentId: string): Promise<{ merchant: PluginMerchant; link: { id: string; name: string } | null; linkKey: number | null; customer: ActionCustomer | null; payer: ActionPayer } | null>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isBlank = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '');

/** The API's `after_payment.actions` list as the link JSON shows it (additive to the Link object). */
export function afterPaymentJson(actions: LinkAction[]) {
  return { actions: actions.map((a) => ({ id: a.actionId, settings: a.settings })) };
}

export function createActionService(deps: ActionDeps) {
  const { db, log, jobs, events, registries } = deps;

  const fail = (errors: FieldError[]): never => {
    throw new ValidationError(errors);
  };

  /** The action's schema, then its check, for one entry: the parsed settings, or problems by field. */
  async function validateOne(merchant: PluginMerchant, action: AfterPaymentAction<any>, entry: ActionEntry): Promise<{ settings: unknown } | { errors: FieldError[] }> {
    const failed = (err: unknown) => {
      log.error('an action failed to check its settings', { action: action.id, error: err });
      return { errors: [{ field: entry.at, code: 'action_check_failed', message: `“${action.label}” could not check these settings just now. Please try again.` }] };
    };
    let parsed;
    try {
      parsed = await action.settings.safeParseAsync(entry.settings === undefined ? {} : entry.settings);
    } catch (err) {
      return failed(err); // a refinement of the plugin's that throws
    }
    if (!parsed.success) {
      return { errors: parsed.error.issues.map((i) => ({ field: entry.setting(i.path.map(String).join('.')), code: 'invalid_setting', message: i.message })) };
    }
    if (!action.check) return { settings: parsed.data };
    let problems;
    try {
      problems = await action.check(parsed.data, { merchant });
    } catch (err) {
      return failed(err);
    }
    if (!Array.isArray(problems) || !problems.length) return { settings: parsed.data };
    return { errors: problems.map((p) => ({ field: entry.setting(String(p.field ?? '')), code: p.code ?? 'invalid_setting', message: String(p.message) })) };
  }

  const service = {
    /**
     * The API's `after_payment` into entries (no database): `actions: [{ id, settings }]` replaces the
     * link's list; an action's shorthand keys (see AfterPaymentAction.apiShorthand) set or, all empty,
     * remove only that action; null removes every action. Undefined: no change (null answer).
     */
    parseApi(raw: unknown): { entries: ActionEntry[]; remove: 'all' | string[] } | null {
      if (raw === undefined) return null;
      if (raw === null) return { entries: [], remove: 'all' };
      if (!isObject(raw)) fail([{ field: 'after_payment', code: 'invalid_after_payment', message: 'after_payment must be an object, such as { "actions": [{ "id": "…", "settings": {} }] }.' }]);
      const body = raw as Record<string, unknown>;
      const errors: FieldError[] = [];
      const entries: ActionEntry[] = [];
      const seen = new Map<string, string>();
      const claim = (actionId: string, field: string) => {
        if (seen.has(actionId)) errors.push({ field, code: 'duplicate_action', message: `The action "${actionId}" is already chosen (${seen.get(actionId)}).` });
        else seen.set(actionId, field);
        return !errors.some((e) => e.field === field);
      };

      let remove: 'all' | string[] = [];
      if ('actions' in body) {
        remove = 'all';
        const list = body.actions;
        if (!Array.isArray(list)) errors.push({ field: 'after_payment.actions', code: 'invalid_actions', message: 'after_payment.actions must be a list of { "id", "settings" }.' });
        else {
          list.forEach((item, i) => {
            const at = `after_payment.actions[${i}]`;
            if (!isObject(item)) return void errors.push({ field: at, code: 'invalid_action', message: 'Each action must be an object with "id" and "settings".' });
            const id = item.id;
            if (typeof id !== 'string' || !registries.actions.has(id)) {
              return void errors.push({ field: `${at}.id`, code: 'unknown_action', message: typeof id === 'string' ? `No action "${id}" is installed.` : 'id must be the id of an installed action.' });
            }
            if (item.settings !== undefined && !isObject(item.settings)) return void errors.push({ field: `${at}.settings`, code: 'invalid_settings', message: 'settings must be an object.' });
            if (!claim(id, `${at}.id`)) return;
            entries.push({ actionId: id, settings: item.settings, at, setting: (path) => (path ? `${at}.settings.${path}` : `${at}.settings`) });
          });
        }
      }

      const shorthand = new Map<string, { action: AfterPaymentAction<any>; field: string }>();
      for (const action of registries.actions.list()) for (const [key, field] of Object.entries(action.apiShorthand ?? {})) shorthand.set(key, { action, field });
      const given = new Map<AfterPaymentAction<any>, [string, unknown][]>();
      for (const [key, value] of Object.entries(body)) {
        if (key === 'actions') continue;
        const known = shorthand.get(key);
        if (!known) errors.push({ field: `after_payment.${key}`, code: 'unknown_field', message: `after_payment has no "${key}": use after_payment.actions.` });
        else given.set(known.action, [...(given.get(known.action) ?? []), [key, value]]);
      }
      for (const [action, pairs] of given) {
        const toBody = new Map(Object.entries(action.apiShorthand ?? {}).map(([k, f]) => [f, k]));
        const setting = (path: string) => {
          if (!path) return 'after_payment';
          const [first, ...rest] = path.split('.');
          return ['after_payment', toBody.get(first) ?? first, ...rest].join('.');
        };
        if (pairs.every(([, v]) => isBlank(v))) {
          if (remove !== 'all') remove.push(action.id);
          continue;
        }
        if (!claim(action.id, setting(action.apiShorthand![pairs[0][0]]))) continue;
        const settings = Object.fromEntries(pairs.map(([k, v]) => [action.apiShorthand![k], v]));
        entries.push({ actionId: action.id, settings, at: 'after_payment', setting });
      }
      if (errors.length) fail(errors);
      return { entries, remove };
    },

    /** Checks every entry with its action's schema and check; fails with all problems at once. */
    async validate(merchant: PluginMerchant, entries: ActionEntry[]): Promise<PreparedAction[]> {
      const errors: FieldError[] = [];
      const prepared: PreparedAction[] = [];
      for (const entry of entries) {
        const action = registries.actions.get(entry.actionId);
        if (!action) {
          errors.push({ field: entry.at, code: 'unknown_action', message: `No action "${entry.actionId}" is installed.` });
          continue;
        }
        const result = await validateOne(merchant, action, entry);
        if ('errors' in result) errors.push(...result.errors);
        else prepared.push({ actionId: action.id, label: action.label, settings: result.settings, requiresCustomer: action.requiresCustomer === true, at: entry.at });
      }
      if (errors.length) fail(errors);
      return prepared;
    },

    /** The API's `after_payment`, parsed and validated: a plan, or null when it was not given. */
    async prepare(merchant: PluginMerchant, raw: unknown): Promise<AfterPaymentPlan | null> {
      const parsed = service.parseApi(raw);
      if (!parsed) return null;
      return { set: await service.validate(merchant, parsed.entries), remove: parsed.remove };
    },

    /** Problems of a plan's actions that need the paying customer, for a link made for `audience`. */
    customerProblems(plan: AfterPaymentPlan | null, audience: LinkAudience, existingLink = false): FieldError[] {
      if (!plan || audience === 'one') return [];
      return plan.set
        .filter((a) => a.requiresCustomer)
        .map((a) =>
          audience === 'many'
            ? { field: a.at, code: 'needs_one_customer', message: `“${a.label}” needs the link to be sent to one customer, not to several.` }
            : { field: a.at, code: 'needs_customer', message: existingLink ? `“${a.label}” needs a link made for one customer (sent to them when it was created).` : `“${a.label}” needs the link to be sent to one customer (send.customer_id).` },
        );
    },

    /** Writes a plan for a link in `trx`. */
    async commit(trx: Knex.Transaction, linkKey: number, plan: AfterPaymentPlan): Promise<void> {
      const gone = plan.remove === 'all' ? null : [...new Set([...plan.remove, ...plan.set.map((a) => a.actionId)])];
      if (gone === null) await trx('link_actions').where({ link_id: linkKey }).del();
      else if (gone.length) await trx('link_actions').where({ link_id: linkKey }).whereIn('action_id', gone).del();
      if (plan.set.length) await trx('link_actions').insert(plan.set.map((a) => ({ link_id: linkKey, action_id: a.actionId, settings: JSON.stringify(a.settings) })));
    },

    /** Applies a plan to an existing link; actions that need the customer need a link made for one. */
    async apply(link: { key: number; customerKey: number | null }, plan: AfterPaymentPlan): Promise<void> {
      const problems = service.customerProblems(plan, link.customerKey === null ? 'none' : 'one', true);
      if (problems.length) fail(problems);
      await inTransaction(db, (trx) => service.commit(trx, link.key, plan));
    },

    async forLink(linkKey: number): Promise<LinkAction[]> {
      return (await service.forLinks([linkKey])).get(linkKey) ?? [];
    },

    /** The actions of many links in one read (for API lists), by link key, each sorted by action id. */
    /**
     * Copies a link's actions to its duplicate in `trx`. A duplicate is made for no one, so actions
     * that need the paying customer are left out, as are actions whose plugin is gone.
     */
    async copy(trx: Knex.Transaction, fromLinkKey: number, toLinkKey: number): Promise<void> {
      const rows = (await trx('link_actions').where({ link_id: fromLinkKey }).orderBy('action_id')) as { action_id: string; settings: string }[];
      const kept = rows.filter((r) => {
        const action = registries.actions.get(r.action_id);
        return action && action.requiresCustomer !== true;
      });
      if (kept.length) await trx('link_actions').insert(kept.map((r) => ({ link_id: toLinkKey, action_id: r.action_id, settings: r.settings })));
    },

    async forLinks(linkKeys: number[]): Promise<Map<number, LinkAction[]>> {
      const out = new Map<number, LinkAction[]>();
      if (!linkKeys.length) return out;
      const rows = (await db('link_actions').whereIn('link_id', [...new Set(linkKeys)]).orderBy(['link_id', 'action_id'])) as { link_id: number; action_id: string; settings: string }[];
      for (const r of rows) out.set(Number(r.link_id), [...(out.get(Number(r.link_id)) ?? []), { actionId: r.action_id, settings: JSON.parse(r.settings) }]);
      return out;
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
    // A payment on no link (an open amount on the merchant's page) has no actions: no run is queued.
  }, () => true, async (e) => (e.payload as { linkId?: string | null }).linkId != null);

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
    const settings = await action.settings.safeParseAsync(setting.settings);
    if (!settings.success) throw new PermanentJobError(`stored settings of ${actionId} no longer validate`);
    if (action.requiresCustomer && !ctx.customer) {
      log.info('payment has no customer; the action needs one and does not run', { action: actionId, event: eventId });
      return;
    }
    try {
      await action.run({ event: event as PaylinkEvent<'payment.succeeded'>, settings: settings.data, merchant: ctx.merchant, link: ctx.link, customer: ctx.customer, payer: ctx.payer });
    } catch (err) {
      // A refusal the action says will not change: no point retrying it.
      if (err instanceof ProviderError && !err.retryable) throw new PermanentJobError(`${actionId}: ${err.message}`);
      throw err;
    }
  });

  return service;
}

export type ActionService = ReturnType<typeof createActionService>;
