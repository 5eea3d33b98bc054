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

/**
 * Channels: a real channel for an id wins over a fallback one (channel-outbox registers fallbacks for
 * email, sms and whatsapp so a fresh install "sends" into its Outbox).
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
}

export interface Registries {
  providers: Registry<PaymentProvider<any>>;
  channels: ChannelRegistry;
  actions: Registry<AfterPaymentAction<any>>;
}

export function createRegistries(): Registries {
  return { providers: new Registry('provider'), channels: new ChannelRegistry(), actions: new Registry('action') };
}
