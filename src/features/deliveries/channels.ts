/**
 * The channels a merchant can send through, and how each one reaches a customer. Channels are
 * whatever plugins registered (email, sms, whatsapp, or any id of their own); deliveries owns what
 * they mean for sending: the label merchants see, the address a channel needs (email, phone, or a
 * kind of its own that customer records hold), which of a customer's addresses it uses, why a
 * customer cannot be reached on it, and which template style its messages take.
 */
import type { ChannelAddress } from '../../plugin-api.ts';
import type { ChannelRegistry } from '../../core/plugins/registries.ts';

/** Anyone a message can go to: a customer's name and addresses (custom kinds by kind). */
export interface Reachable {
  name: string;
  email: string | null;
  phone: string | null;
  addresses?: Readonly<Record<string, string>>;
}

export interface ChannelInfo {
  id: string;
  label: string;
  /** `email`, `phone` or the channel's own kind (e.g. `ntfy_topic`). */
  addressKind: string;
  /** How merchants call that address: "email address", "phone number", "ntfy topic". */
  addressLabel: string;
  /** `email`: subject, text and HTML; `text`: one short text (SMS-like). */
  style: 'email' | 'text';
  /**
   * Set when the channel serving this id only keeps messages (channel-outbox while no real channel is
   * configured): what to tell the merchant instead of "Sent", and where to read how to send for real.
   */
  keeps: KeptNotice | null;
}

/** "Kept in the Outbox (no email server configured)", and the page that explains how to configure one. */
export interface KeptNotice {
  /** "Kept in the Outbox (no email server configured)" */
  text: string;
  /** "no email server configured" */
  reason: string;
  /** "How to send for real": the keeping plugin's page, at its section on configuring a real channel. */
  help: { href: string; text: string };
}

export interface ChannelOption {
  id: string;
  label: string;
  enabled: boolean;
  /** Why the channel cannot reach this customer. */
  reason: string | null;
  /** The customer's address on the channel (as stored), when they have one. */
  address: string | null;
}

/** A custom address kind some registered channel needs; customer records hold one value per kind. */
export interface AddressKind {
  kind: string;
  label: string;
  /** The channels that send to it. */
  channels: string[];
  parse(value: string): { ok: true; value: string } | { ok: false; message: string };
}

/** The longest address a delivery stores. */
export const MAX_ADDRESS_LENGTH = 254;

/** Core's channels first, in this order; the rest by label. */
const CORE_ORDER = ['email', 'sms', 'whatsapp'];
/** What core's channel ids are called when the plugin that serves one gives no label. */
const CORE_LABELS: Record<string, string> = { email: 'Email', sms: 'SMS', whatsapp: 'WhatsApp' };

function defaultParse(label: string) {
  return (value: string): { ok: true; value: string } | { ok: false; message: string } => {
    const v = value.trim();
    if (!v) return { ok: false, message: `Enter the ${label}.` };
    if (/[\u0000-\u001f\u007f\u2028\u2029]/.test(v)) return { ok: false, message: `The ${label} cannot contain line breaks or control characters.` };
    return { ok: true, value: v };
  };
}

/** What is missing when a keeps-only channel serves an id: an email server, an SMS provider… */
function notConfigured(id: string, label: string, address: 'email' | 'phone' | ChannelAddress): string {
  if (address === 'email') return 'no email server configured';
  if (address === 'phone') return `no ${label} provider configured`;
  return `no ${label} service configured`;
}

/** How a keeps-only channel's messages read to the merchant, wherever a delivery shows. */
export function keptNotice(reason: string, help: string): KeptNotice {
  return { text: `Kept in the Outbox (${reason})`, reason, help: { href: help, text: 'How to send for real' } };
}

export function createChannelDirectory(registry: Pick<ChannelRegistry, 'list' | 'get'> & Partial<Pick<ChannelRegistry, 'ownerOf'>>) {
  const info = (c: { id: string; label?: string; address: 'email' | 'phone' | ChannelAddress; keepsOnly?: boolean }): ChannelInfo => {
    const custom = typeof c.address === 'object';
    const label = c.label?.trim() || CORE_LABELS[c.id] || c.id;
    const owner = c.keepsOnly ? registry.ownerOf?.(c.id) : undefined;
    return {
      id: c.id,
      label,
      addressKind: custom ? (c.address as ChannelAddress).kind : (c.address as string),
      addressLabel: custom ? (c.address as ChannelAddress).label : c.address === 'email' ? 'email address' : 'phone number',
      style: c.address === 'email' ? 'email' : 'text',
      keeps: c.keepsOnly === true ? keptNotice(notConfigured(c.id, label, c.address), owner ? `/app/p/${encodeURIComponent(owner)}#configure` : '/app/plugins') : null,
    };
  };

  const rank = (id: string) => (CORE_ORDER.includes(id) ? CORE_ORDER.indexOf(id) : CORE_ORDER.length);

  const directory = {
    /** Every channel a merchant can choose, core's first. */
    list(): ChannelInfo[] {
      return registry
        .list()
        .map(info)
        .sort((a, b) => rank(a.id) - rank(b.id) || a.label.localeCompare(b.label, 'en') || a.id.localeCompare(b.id));
    },

    get(id: string): ChannelInfo | null {
      const c = registry.get(id);
      return c ? info(c) : null;
    },

    has(id: string): boolean {
      return registry.get(id) !== undefined;
    },

    /** The label merchants see; the id itself for a channel no longer installed. */
    label(id: string): string {
      return directory.get(id)?.label ?? id;
    },

    /** The customer's address on a channel, or null. */
    addressFor(customer: Reachable, channelId: string): string | null {
      const c = directory.get(channelId);
      if (!c) return null;
      if (c.addressKind === 'email') return customer.email;
      if (c.addressKind === 'phone') return customer.phone;
      return customer.addresses?.[c.addressKind] || null;
    },

    /** "No email address", "No phone number", "No ntfy topic". */
    missing(channelId: string): string {
      return `No ${directory.get(channelId)?.addressLabel ?? `${channelId} address`}`;
    },

    /** Each channel for one customer: whether it reaches them, and why not. */
    options(customer: Reachable): ChannelOption[] {
      return directory.list().map((c) => {
        const address = directory.addressFor(customer, c.id);
        return { id: c.id, label: c.label, enabled: address !== null, reason: address === null ? directory.missing(c.id) : null, address };
      });
    },

    /** The custom address kinds registered channels need (the first declaration of a kind wins). */
    addressKinds(): AddressKind[] {
      const kinds = new Map<string, AddressKind>();
      for (const c of registry.list()) {
        if (typeof c.address !== 'object') continue;
        const a = c.address;
        const known = kinds.get(a.kind);
        if (known) {
          known.channels.push(c.id);
          continue;
        }
        const own = a.parse;
        const parse = (value: string) => {
          const base = defaultParse(a.label)(value);
          if (!base.ok || !own) return base;
          try {
            const r = own(base.value);
            return r && r.ok === true && typeof r.value === 'string' ? { ok: true as const, value: r.value.trim() } : { ok: false as const, message: (r && r.ok === false && String(r.message)) || `Enter a valid ${a.label}.` };
          } catch {
            // A plugin's parse that throws must not turn a customer form into a 500.
            return { ok: false as const, message: `Enter a valid ${a.label}.` };
          }
        };
        kinds.set(a.kind, {
          kind: a.kind,
          label: a.label,
          channels: [c.id],
          parse: (value) => {
            const r = parse(value);
            if (r.ok && !r.value) return { ok: false, message: `Enter the ${a.label}.` };
            if (r.ok && r.value.length > MAX_ADDRESS_LENGTH) return { ok: false, message: `The ${a.label} can have at most ${MAX_ADDRESS_LENGTH} characters.` };
            return r;
          },
        });
      }
      return [...kinds.values()];
    },
  };
  return directory;
}

export type ChannelDirectory = ReturnType<typeof createChannelDirectory>;
