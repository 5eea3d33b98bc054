/**
 * What the link form shows for sending: the "Send to a customer" section of the new-link form,
 * re-rendered by htmx as the merchant picks a customer or channels, so it is built here from the
 * form's values alone.
 */
import type { AppDeps } from '../../web/deps.ts';
import { NotFoundError } from '../../core/errors.ts';
import type { Merchant } from '../merchants/index.ts';
import type { Customer } from '../customers/index.ts';
import type { ChannelOption } from '../deliveries/index.ts';
import { FREQUENCIES, FREQUENCY_LABELS, REMINDERS_MAX } from '../reminders/index.ts';
import type { SendFormValues } from './form.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'customers' | 'deliveries'>;

/** Customers offered in the select; with more, a search box narrows them. */
export const CUSTOMER_CHOICES = 100;

export interface SendSection {
  values: SendFormValues;
  searchable: boolean;
  choices: Customer[];
  customer: Customer | null;
  channels: (ChannelOption & { checked: boolean })[];
  remindersAllowed: boolean;
  frequencies: { id: string; label: string }[];
  remindersMax: number;
}

export function createSendSections(rt: Deps) {
  const { customers } = rt;
  const { channels: directory } = rt.deliveries;

  const customerOf = async (merchant: Merchant, id: string): Promise<Customer | null> =>
    id ? customers.get(merchant.key, id).catch((err) => (err instanceof NotFoundError ? null : Promise.reject(err))) : null;

  const sections = {
    customerOf,

    /**
     * The send section. `renderedFor` is the customer the section showed before this refresh: when
     * the merchant picks another customer, the channels start again from the first one that reaches them.
     */
    async send(merchant: Merchant, values: SendFormValues, errors: Record<string, string> = {}, renderedFor?: string): Promise<SendSection> {
      const query = values.customer_q.trim();
      const [found, customer] = await Promise.all([customers.search(merchant.key, { q: query || undefined, perPage: CUSTOMER_CHOICES }), customerOf(merchant, values.customer_id)]);
      const choices = customer && !found.items.some((c) => c.id === customer.id) ? [customer, ...found.items] : found.items;
      const v = { ...values, customer_id: customer?.id ?? values.customer_id };
      const options = customer ? directory.options(customer) : directory.list().map((c) => ({ id: c.id, label: c.label, enabled: false, reason: null, address: null }));
      if (customer && renderedFor !== undefined && renderedFor !== customer.id) {
        const first = options.find((o) => o.enabled);
        v.channels = first ? [first.id] : [];
      }
      const channels = options.map((o) => ({ ...o, checked: o.enabled && v.channels.includes(o.id) }));
      const remindersAllowed = !!customer && channels.some((c) => c.checked);
      return {
        values: { ...v, reminders: v.reminders && remindersAllowed },
        searchable: found.hasMore || query !== '',
        choices,
        customer,
        channels,
        remindersAllowed,
        frequencies: FREQUENCIES.map((id) => ({ id, label: FREQUENCY_LABELS[id] })),
        remindersMax: REMINDERS_MAX,
      };
    },
  };
  return sections;
}
