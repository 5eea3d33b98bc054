/**
 * Sending a link to customers: one customer, several, or everyone with a customer tag, by any
 * installed channel (email, SMS, WhatsApp, a plugin's own) or several — each recipient gets their
 * own deliveries (addressed by the deliveries feature's channel directory) and, when asked, their own
 * reminder plan. Text-to-Pay makes a one-off payment request for one customer and texts it in one
 * step. Everything a send writes commits in one transaction (with the link, when it is created in
 * the same request); the messages leave from the deliveries outbox right after.
 */
import { z } from 'zod';
import type { Db, Trx } from '../../core/db.ts';
import { inTransaction } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { AppError, NotFoundError, ValidationError, fieldErrorsFromZod, type FieldError } from '../../core/errors.ts';
import { amountCeilingError } from '../../core/money.ts';
import type { Registries } from '../../core/plugins/registries.ts';
import type { Merchant } from '../merchants/index.ts';
import type { Customer, CustomerService } from '../customers/index.ts';
import type { TagService } from '../tags/index.ts';
import type { CreatedBy, Link, LinkService } from '../links/index.ts';
import type { DeliveryService, QueueItem } from '../deliveries/index.ts';
import type { ReminderService } from '../reminders/index.ts';
import type { ActionService, AfterPaymentPlan } from '../actions/index.ts';
import { toPluginMerchant } from '../merchants/index.ts';
import { FREQUENCIES, REMINDERS_MAX, type Frequency } from '../reminders/index.ts';
import type { RequestService } from '../requests/index.ts';

/** How long a Text-to-Pay request stays payable. */
export const REQUEST_TTL_DAYS = 30;
/** The most recipients one send may reach. */
export const MAX_RECIPIENTS = 5_000;

export const sendSchema = z
  .object({
    customer_id: z.string({ error: 'customer_id must be a customer id.' }).trim().min(1, 'Choose a customer.').optional(),
    customer_ids: z.array(z.string({ error: 'customer_ids must be customer ids.' }).trim().min(1), { error: 'customer_ids must be a list of customer ids.' }).max(MAX_RECIPIENTS, `Send to at most ${MAX_RECIPIENTS} customers at once.`).optional(),
    customer_tag: z.string({ error: 'customer_tag must be a tag id.' }).trim().min(1, 'Choose a customer tag.').optional(),
    // Any channel id; which ones are installed is checked against the registry (422 unknown_channel).
    channels: z
      .array(z.string({ error: 'Channels are given by id, such as "email" or "sms".' }).trim().min(1, 'Channels are given by id, such as "email" or "sms".').max(64, 'That is not a channel id.'), { error: 'Pick at least one channel, such as email or sms.' })
      .min(1, 'Pick at least one channel, such as email or sms.')
      .max(20, 'Pick at most 20 channels.')
      .transform((c) => [...new Set(c)]),
    reminders: z
      .object({
        frequency: z.enum(FREQUENCIES, { error: 'Choose how often: daily, every_2_days, every_3_days, weekly or monthly.' }),
        max: z
          .number({ error: `The number of reminders must be a whole number from 1 to ${REMINDERS_MAX}.` })
          .int(`The number of reminders must be a whole number from 1 to ${REMINDERS_MAX}.`)
          .min(1, `The number of reminders must be a whole number from 1 to ${REMINDERS_MAX}.`)
          .max(REMINDERS_MAX, `At most ${REMINDERS_MAX} reminders.`),
      })
      .nullish(),
  })
  .superRefine((s, ctx) => {
    const given = [s.customer_id, s.customer_ids, s.customer_tag].filter((v) => v !== undefined).length;
    if (given === 0) ctx.addIssue({ code: 'custom', path: ['customer_id'], message: 'Choose who to send the link to.' });
    if (given > 1) ctx.addIssue({ code: 'custom', path: ['customer_id'], message: 'Send to one customer, a list of customers, or a customer tag — not several at once.' });
  });
export type SendInput = z.infer<typeof sendSchema>;

/** A validated send: who gets which channels, ready to write in a transaction. */
export interface PreparedSend {
  recipients: { customer: Customer; channels: string[] }[];
  /** Customers who could not be reached on any chosen channel (send to many only). */
  skipped: { customer: Customer; reason: string }[];
  reminders: { frequency: Frequency; max: number } | null;
  /** The one customer a single send is for (a link created for them records it). */
  single: Customer | null;
}

export interface SendResult {
  deliveries: string[];
  plans: string[];
  recipients: number;
  skipped: { customerId: string; name: string; reason: string }[];
}

export interface SendingDeps {
  db: Db;
  clock: Clock;
  registries: Registries;
  customers: CustomerService;
  tags: TagService;
  links: LinkService;
  deliveries: DeliveryService;
  reminders: ReminderService;
  actions: ActionService;
  /** Text-to-Pay makes payment requests. */
  requests: Pick<RequestService, 'create'>;
}

function parseNested<S extends z.ZodType>(prefix: string, schema: S, raw: unknown): z.infer<S> {
  const result = schema.safeParse(raw ?? {});
  if (result.success) return result.data;
  throw new ValidationError(fieldErrorsFromZod(result.error.issues).map((e) => ({ ...e, field: e.field ? `${prefix}.${e.field}` : prefix })));
}

export function createSendingService(deps: SendingDeps) {
  const { db, clock, registries, customers, tags, links, deliveries, reminders, actions } = deps;
  const { channels } = deliveries;

  /** 422 `unknown_channel` (field `field`) for ids no plugin registered. */
  const unknownChannels = (field: string, ids: string[]): FieldError[] => {
    const installed = channels.list().map((c) => c.id).join(', ');
    return ids.filter((id) => !channels.has(id)).map((id) => ({ field, code: 'unknown_channel', message: `“${id.slice(0, 64)}” is not an installed channel (installed: ${installed}).` }));
  };

  const unknownCustomer = (field: string): FieldError => ({ field, code: 'unknown_customer', message: 'Choose one of your customers.' });

  const service = {
    /** Validates a send and finds its recipients; writes nothing. Errors name fields under `send.`. */
    async prepare(merchant: Merchant, raw: unknown): Promise<PreparedSend> {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw new ValidationError([{ field: 'send', code: 'invalid_send', message: 'send must be an object with customer_id and channels.' }]);
      }
      const input = parseNested('send', sendSchema, raw);
      const unknown = unknownChannels('send.channels', input.channels);
      if (unknown.length) throw new ValidationError(unknown);
      // A reminder plan stores its channels in one column (255 characters).
      if (input.reminders && input.channels.join(',').length > 255) {
        throw new ValidationError([{ field: 'send.channels', code: 'too_many_channels', message: 'Pick fewer channels for reminders.' }]);
      }
      let found: Customer[];
      if (input.customer_id !== undefined) {
        const c = await customers.get(merchant.key, input.customer_id).catch((err) => (err instanceof NotFoundError ? null : Promise.reject(err)));
        if (!c) throw new ValidationError([unknownCustomer('send.customer_id')]);
        found = [c];
      } else if (input.customer_ids !== undefined) {
        const ids = [...new Set(input.customer_ids)];
        if (!ids.length) throw new ValidationError([{ field: 'send.customer_ids', code: 'no_recipients', message: 'Choose at least one customer.' }]);
        found = await customers.getMany(merchant.key, ids);
        const unknown = ids.find((id) => !found.some((c) => c.id === id));
        if (unknown) throw new ValidationError([{ ...unknownCustomer('send.customer_ids'), message: `No customer ${unknown}.` }]);
      } else {
        const tag = await tags.get(merchant.key, input.customer_tag!).catch((err) => (err instanceof NotFoundError ? null : Promise.reject(err)));
        if (!tag || tag.kind !== 'customer') throw new ValidationError([{ field: 'send.customer_tag', code: 'unknown_tag', message: 'Choose one of your customer tags.' }]);
        found = await customers.withTag(merchant.key, tag.key);
        if (!found.length) throw new ValidationError([{ field: 'send.customer_tag', code: 'no_recipients', message: `No customer has the tag “${tag.name}”.` }]);
        if (found.length > MAX_RECIPIENTS) throw new ValidationError([{ field: 'send.customer_tag', code: 'too_many_recipients', message: `That tag has ${found.length} customers; send to at most ${MAX_RECIPIENTS} at once.` }]);
      }
      const recipients: PreparedSend['recipients'] = [];
      const skipped: PreparedSend['skipped'] = [];
      for (const customer of found) {
        const reachable = input.channels.filter((c) => channels.addressFor(customer, c));
        const unreachable = input.channels.filter((c) => !reachable.includes(c));
        if (found.length === 1 && unreachable.length) {
          // One customer: every channel asked for must reach them, or the merchant would believe it did.
          throw new ValidationError(
            unreachable.map((c) => ({
              field: 'send.channels',
              code: 'channel_unreachable',
              message: `${customer.name} has no ${channels.get(c)!.addressLabel}, so ${channels.label(c)} cannot reach them.`,
            })),
          );
        }
        if (reachable.length) recipients.push({ customer, channels: reachable });
        else skipped.push({ customer, reason: `No ${[...new Set(input.channels.map((c) => channels.get(c)!.addressLabel))].join(' or ')}` });
      }
      if (!recipients.length) throw new ValidationError([{ field: 'send.channels', code: 'no_recipients', message: 'None of these customers can be reached on the chosen channels.' }]);
      // A customer tag is a send to many even when it has one member today: the link is not "for" them.
      return { recipients, skipped, reminders: input.reminders ?? null, single: found.length === 1 && input.customer_tag === undefined ? found[0] : null };
    },

    /** Writes a prepared send for a link in `trx`: initial deliveries now, reminder plans when asked. */
    async commit(trx: Trx, merchant: Merchant, link: { key: number }, prepared: PreparedSend): Promise<SendResult> {
      const now = clock.now();
      const items: QueueItem[] = [];
      const plans: string[] = [];
      for (const { customer, channels: chosen } of prepared.recipients) {
        for (const channel of chosen) items.push({ merchantKey: merchant.key, linkKey: link.key, customerKey: customer.key, channel, kind: 'initial', to: channels.addressFor(customer, channel)! });
        if (prepared.reminders) {
          plans.push(
            await reminders.createPlan(trx, {
              merchantKey: merchant.key,
              linkKey: link.key,
              customerKey: customer.key,
              channels: chosen,
              frequency: prepared.reminders.frequency,
              max: prepared.reminders.max,
              anchor: now,
              timeZone: merchant.timezone,
            }),
          );
        }
      }
      const ids = await deliveries.queue(trx, items);
      return {
        deliveries: ids,
        plans,
        recipients: prepared.recipients.length,
        skipped: prepared.skipped.map((s) => ({ customerId: s.customer.id, name: s.customer.name, reason: s.reason })),
      };
    },

    /** Sends an existing link (from the link page or the API). */
    async send(merchant: Merchant, link: Link, raw: unknown): Promise<SendResult> {
      if (link.deletedAt || !link.active) {
        throw new ValidationError([{ field: 'send', code: 'link_inactive', message: 'This link is not active: activate it before sending it.' }]);
      }
      const prepared = await service.prepare(merchant, raw);
      return inTransaction(db, (trx) => service.commit(trx, merchant, link, prepared));
    },

    /**
     * Creates a link and, in the same transaction, sends it and stores its after-payment actions
     * (`after_payment`, or a plan the link form already validated). Actions that need the paying
     * customer need `send` to one customer.
     */
    async createLink(merchant: Merchant, body: Record<string, unknown>, opts: { afterPayment?: AfterPaymentPlan | null; by?: CreatedBy } = {}): Promise<{ link: Link; sent: SendResult | null }> {
      const { send: rawSend, after_payment: rawAfter, ...linkBody } = body;
      const errors: FieldError[] = [];
      const collect = async <T>(fn: () => Promise<T>): Promise<T | null> => {
        try {
          return await fn();
        } catch (err) {
          if (err instanceof AppError && err.errors?.length && err.status === 422) {
            errors.push(...err.errors);
            return null;
          }
          throw err;
        }
      };
      const noSend = rawSend === undefined || rawSend === null;
      const prepared = noSend ? null : await collect(() => service.prepare(merchant, rawSend));
      const after = 'afterPayment' in opts ? (opts.afterPayment ?? null) : await collect(() => actions.prepare(toPluginMerchant(merchant), rawAfter));
      if (noSend || prepared) errors.push(...actions.customerProblems(after, noSend ? 'none' : prepared!.single ? 'one' : 'many'));
      if (errors.length) throw new ValidationError(errors);
      let sent: SendResult | null = null;
      const link = await links.create(merchant, linkBody, {
        customerKey: prepared?.single?.key ?? null,
        by: opts.by ?? { source: 'dashboard' },
        within: async (trx, created) => {
          if (prepared) sent = await service.commit(trx, merchant, created, prepared);
          if (after) await actions.commit(trx, created.key, after);
        },
      });
      return { link, sent };
    },

    /** The channels Text-to-Pay offers: every installed text channel (not email-style), SMS first. */
    textChannels() {
      return channels.list().filter((c) => c.style === 'text');
    },

    /**
     * Text-to-Pay: a one-off, single-use request for `amount` (minor units) to one customer, by SMS
     * or another text channel (`channel`, default `sms`).
     */
    async textToPay(merchant: Merchant, customerId: string, input: { amount: unknown; description?: unknown; channel?: unknown }): Promise<{ link: Link; url: string; deliveryId: string; channel: string; requestId: string }> {
      const customer = await customers.get(merchant.key, customerId);
      const errors: FieldError[] = [];
      const channelId = input.channel === undefined || input.channel === null || input.channel === '' ? 'sms' : input.channel;
      const amount = input.amount;
      if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0) {
        errors.push({ field: 'amount', code: 'invalid_amount', message: 'Enter an amount greater than zero.' });
      } else {
        const tooLarge = amountCeilingError(amount, merchant.currency);
        if (tooLarge) errors.push(tooLarge);
      }
      let description: string | null = null;
      if (input.description !== undefined && input.description !== null) {
        if (typeof input.description !== 'string') errors.push({ field: 'description', code: 'invalid_description', message: 'The description must be text.' });
        else {
          description = input.description.trim() || null;
          if (description && description.length > 120) errors.push({ field: 'description', code: 'too_long', message: 'Keep the description under 120 characters.' });
          if (description && /[\u0000-\u001f\u007f\u2028\u2029]/.test(description)) errors.push({ field: 'description', code: 'invalid_description', message: 'The description cannot contain line breaks.' });
        }
      }
      const channel = typeof channelId === 'string' ? channels.get(channelId) : null;
      const to = channel ? channels.addressFor(customer, channel.id) : null;
      if (typeof channelId !== 'string' || !channel) {
        errors.push(...(typeof channelId === 'string' && channelId.length <= 64 ? unknownChannels('channel', [channelId]) : [{ field: 'channel', code: 'unknown_channel', message: 'channel must be the id of an installed channel.' }]));
      } else if (channel.style !== 'text') {
        errors.push({ field: 'channel', code: 'not_a_text_channel', message: `${channel.label} is not a text channel: send a link by ${channel.label} from the link page instead.` });
      } else if (!to) {
        // A missing phone keeps its field (the customer form's); another address kind is the channel's business.
        const field = channel.addressKind === 'phone' ? 'phone' : 'channel';
        const code = channel.addressKind === 'phone' ? 'no_phone' : 'channel_unreachable';
        errors.push({ field, code, message: `${customer.name} has no ${channel.addressLabel}, so ${channel.label} cannot reach them.` });
      }
      if (errors.length) throw new ValidationError(errors);
      // A payment request like any other (source text_to_pay), sent by the one text channel.
      const request = await deps.requests.create(
        merchant,
        { amount, currency: merchant.currency, description, customer_id: customer.id, channels: [channel!.id], expires_in: REQUEST_TTL_DAYS * 86_400 },
        { source: 'text_to_pay' },
      );
      const [delivery] = (await deliveries.forLinks([request.link.key])).get(request.link.key) ?? [];
      const link = await links.get(merchant, request.link.id);
      return { link, url: links.urlFor(link, merchant), deliveryId: delivery.id, channel: channel!.id, requestId: request.id };
    },
  };
  return service;
}

export type SendingService = ReturnType<typeof createSendingService>;
