import { ProviderError, type AfterPaymentAction, type Channel, type PaymentProvider } from '../../plugin-api.ts';

/**
 * A ProviderError from any copy of the plugin API (a plugin may bundle its own, so `instanceof` is
 * not enough): its name, `retryable` and `code` say what it is.
 */
export function providerErrorOf(err: unknown): Pick<ProviderError, 'retryable' | 'code' | 'message'> | null {
  if (err instanceof ProviderError) return err;
  if (!(err instanceof Error) || err.name !== 'ProviderError') return null;
  const e = err as Error & { retryable?: unknown; code?: unknown };
  return typeof e.retryable === 'boolean' && typeof e.code === 'string' ? (e as ProviderError) : null;
}

/** A registry of named things contributed by plugins; a second registration of an id is an error. */
export class Registry<T extends { id: string }> {
  private readonly items = new Map<string, { item: T; owner: string }>();
  constructor(private readonly what: string) {}

  add(item: T, owner: string): void {
    const existing = this.items.get(item.id);
    if (existing) throw new Error(`${this.what} "${item.id}" is already registered by ${existing.owner}`);
    this.items.set(item.id, { item, owner });
  }
  has(id: string): boolean {
    return this.items.has(id);
  }
  get(id: string): T | undefined {
    return this.items.get(id)?.item;
  }
  ownerOf(id: string): string | undefined {
    return this.items.get(id)?.owner;
  }
  list(): T[] {
    return [...this.items.values()].map((e) => e.item);
  }
}

/** A channel id: persisted with deliveries, plans and templates, and part of form values and element ids. */
export const CHANNEL_ID_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
/** A custom address kind a channel declares (`email` and `phone` are core's own). */
export const ADDRESS_KIND_PATTERN = /^[a-z][a-z0-9_]{1,31}$/;
const CORE_ADDRESS_KINDS = ['email', 'phone'];

/** Why a channel registration is not valid, or null. */
export function channelProblem(channel: unknown): string | null {
  if (typeof channel !== 'object' || channel === null || Array.isArray(channel)) return 'a channel must be an object';
  const c = channel as Partial<Channel>;
  if (typeof c.id !== 'string' || !CHANNEL_ID_PATTERN.test(c.id)) return `channel id "${String(c.id)}" must match ${CHANNEL_ID_PATTERN}`;
  if (c.label !== undefined && (typeof c.label !== 'string' || !c.label.trim() || c.label.length > 40)) return `channel "${c.id}": label must be text of 1 to 40 characters`;
  if (typeof c.send !== 'function') return `channel "${c.id}" has no send function`;
  const a = c.address;
  if (a === 'email' || a === 'phone') return null;
  if (typeof a !== 'object' || a === null) return `channel "${c.id}": address must be 'email', 'phone' or { kind, label, parse? }`;
  if (typeof a.kind !== 'string' || !ADDRESS_KIND_PATTERN.test(a.kind) || CORE_ADDRESS_KINDS.includes(a.kind)) {
    return `channel "${c.id}": address kind "${String(a.kind)}" must match ${ADDRESS_KIND_PATTERN} and not be email or phone`;
  }
  if (typeof a.label !== 'string' || !a.label.trim() || a.label.length > 60) return `channel "${c.id}": address label must be text of 1 to 60 characters`;
  if (a.parse !== undefined && typeof a.parse !== 'function') return `channel "${c.id}": address parse must be a function`;
  return null;
}

/**
 * Channels: a real channel for an id wins over a fallback one (channel-outbox registers fallbacks for
 * email, sms and whatsapp so a fresh install "sends" into its Outbox). Two real channels with one id
 * are a load-time problem (the host refuses to start, naming both plugins).
 */
export class ChannelRegistry {
  private readonly real = new Registry<Channel>('channel');
  private readonly fallbacks = new Registry<Channel>('fallback channel');

  add(channel: Channel, owner: string): void {
    (channel.fallback ? this.fallbacks : this.real).add(channel, owner);
  }
  /** The owner that already holds this channel's slot (real or fallback), if any. */
  conflictFor(channel: Pick<Channel, 'id' | 'fallback'>): string | undefined {
    return (channel.fallback ? this.fallbacks : this.real).ownerOf(channel.id);
  }
  get(id: string): Channel | undefined {
    return this.real.get(id) ?? this.fallbacks.get(id);
  }
  ownerOf(id: string): string | undefined {
    return this.real.ownerOf(id) ?? this.fallbacks.ownerOf(id);
  }
  ids(): string[] {
    return [...new Set([...this.real.list(), ...this.fallbacks.list()].map((c) => c.id))].sort();
  }
  /** The channel serving each id (real over fallback), in registration order. */
  list(): Channel[] {
    const out = new Map<string, Channel>();
    for (const c of this.real.list()) out.set(c.id, c);
    for (const c of this.fallbacks.list()) if (!out.has(c.id)) out.set(c.id, c);
    return [...out.values()];
  }
}

export interface Registries {
  providers: Registry<PaymentProvider<any>>;
  channels: ChannelRegistry;
  actions: Registry<AfterPaymentAction<any>>;
}

export function createRegistries(): Registries {
  return { providers: new Registry('provider'), channels: new ChannelRegistry(), actions: new Registry('action') };
}

/** A provider's capture model for one merchant's settings (`captureModel` may depend on them). */
/** A provider's `holdMinutes` value is a whole number of minutes from 1 to 1440. */
export const validHoldMinutes = (m: unknown): m is number => Number.isInteger(m) && (m as number) >= 1 && (m as number) <= 1440;

/**
 * How long an immediate-capture checkout holds its slot for a merchant's settings: the provider's
 * number, or what its function answers for them; `fallback` when absent or out of range.
 */
export function holdMinutesOf(p: Pick<PaymentProvider<any>, 'holdMinutes'>, settings: unknown, fallback: number): number {
  const m = typeof p.holdMinutes === 'function' ? p.holdMinutes(settings) : p.holdMinutes;
  return validHoldMinutes(m) ? m : fallback;
}

export function captureModelOf(p: Pick<PaymentProvider<any>, 'captureModel'>, settings: unknown): 'manual' | 'immediate' {
  const m = typeof p.captureModel === 'function' ? p.captureModel(settings) : p.captureModel;
  return m === 'immediate' ? 'immediate' : 'manual';
}
