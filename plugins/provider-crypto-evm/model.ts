/** provider-crypto-evm's install-wide configuration and what it stores per checkout. */
import { z } from 'paylink/plugin-api';

const hexAddress = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x address (40 hex digits)');

export const tokenSchema = z.object({
  symbol: z.string().regex(/^[A-Za-z0-9.]{1,12}$/),
  address: hexAddress,
  decimals: z.number().int().min(0).max(36),
  /** The fiat currency it is pegged to 1:1 (USDT, USDC → USD; EURC → EUR). */
  currency: z.string().regex(/^[A-Z]{3}$/),
});

/** A network's own coin, when it counts 1:1 towards a currency (e.g. xDAI on Gnosis → USD). */
export const nativeSchema = z.object({
  symbol: z.string().regex(/^[A-Za-z0-9.]{1,12}$/),
  decimals: z.number().int().min(0).max(36).default(18),
  currency: z.string().regex(/^[A-Z]{3}$/),
});

/** The address a network's native coin stands under among its tokens (never sent to eth_getLogs). */
export const NATIVE_ADDRESS = '0x0000000000000000000000000000000000000000';

export const networkSchema = z.object({
  /** Stable id, e.g. `ethereum`, `polygon`, `base` (persisted with transfers: never rename). */
  id: z.string().regex(/^[a-z0-9-]{1,32}$/),
  name: z.string().min(1).max(60),
  chainId: z.number().int().positive(),
  rpcUrl: z.url(),
  /** Blocks on top of a transfer's (its own included) before it counts. */
  confirmations: z.number().int().min(1).max(1000).default(12),
  /** Where the first scan starts (default: 1000 blocks below the confirmed head). */
  startBlock: z.number().int().min(0).optional(),
  /** Blocks per eth_getLogs request. */
  maxBlockRange: z.number().int().min(1).max(100_000).default(1000),
  /** Block explorer transaction URL prefix, e.g. https://etherscan.io/tx/ */
  explorerTxUrl: z.url().optional(),
  tokens: z.array(tokenSchema).default([]),
  /**
   * The network's own coin, accepted like a token (`<network>:<symbol>`): plain value transfers to a
   * checkout's address, found by reading each block's transactions (eth_getBlockByNumber).
   */
  native: nativeSchema.optional(),
}).refine((n) => n.tokens.length > 0 || n.native, { message: 'a network needs at least one token or a native coin', path: ['tokens'] });

export const configSchema = z.object({
  networks: z.array(networkSchema).default([]),
  /** How long a checkout holds its slot and its address is shown (minutes). */
  holdMinutes: z.number().int().min(1).max(1440).default(30),
  /** How long after a checkout ended a transfer is still recorded (as paid late). */
  watchHours: z.number().min(0).max(24 * 30).default(24),
  rpcAttempts: z.number().int().min(1).max(10).default(4),
  rpcBackoffMs: z.number().int().min(0).max(60_000).default(250),
});

export type Config = z.infer<typeof configSchema>;

/** The countdown a merchant may choose (Settings → Payments), in minutes. */
export const HOLD_MINUTES = { min: 5, max: 180 } as const;
export type Network = Config['networks'][number];
export type Token = z.infer<typeof tokenSchema>;

export const tokenId = (n: Network, t: Token) => `${n.id}:${t.symbol.toLowerCase()}`;

/** What a network accepts: its tokens, then its native coin (address NATIVE_ADDRESS) when configured. */
export const assetsOf = (n: Network): Token[] => [...n.tokens, ...(n.native ? [{ ...n.native, address: NATIVE_ADDRESS }] : [])];
export const isNative = (t: Token) => t.address === NATIVE_ADDRESS;

export interface Transfer {
  /** `<network>:<tx hash>:<log index>`, or `<network>:<tx hash>:native` for a native-coin transfer */
  key: string;
  network: string;
  token: string;
  txHash: string;
  block: number;
  /** Block timestamp (s). */
  time: number;
  /** Token base units. */
  value: string;
  /** Value with 18 decimals (tokens of one currency add up 1:1). */
  value18: string;
}

export type SessionData = {
  sessionId: string;
  paymentId: string;
  index: number;
  /** How many checkouts had this index before (an address that never received anything is handed out again after its watch window). */
  gen?: number;
  /** Handed back for reuse (see `gen`). */
  recycled?: boolean;
  address: string;
  amount: number;
  currency: string;
  currencyDecimals: number;
  expected18: string;
  /** Token ids the merchant accepted when the checkout started. */
  tokens: string[];
  code: string;
  expiresAt: string;
  watchUntil: string;
  state: 'open' | 'paid' | 'expired' | 'underpaid' | 'late';
  transfers: Transfer[];
  pending: (Transfer & { confirmations: number })[];
  /** Late transfers already reported. */
  flagged: string[];
  /** Confirmed transfers the node did not know on consecutive passes (by key: how many), see `vanished`. */
  missing?: Record<string, number>;
  /** Confirmed transfers a reorg deeper than the confirmations took away: no longer counted, flagged for the merchant. */
  vanished?: Transfer[];
};

export const to18 = (units: bigint, decimals: number) => (decimals <= 18 ? units * 10n ** BigInt(18 - decimals) : units / 10n ** BigInt(decimals - 18));
export const minorFrom18 = (v: bigint, currencyDecimals: number) => Number(v / 10n ** BigInt(18 - currencyDecimals));

/** Minor units of a currency → the token's base units (exact: a stablecoin has at least the currency's decimals). */
export const tokenUnits = (minor: number, currencyDecimals: number, decimals: number) =>
  decimals >= currencyDecimals ? BigInt(minor) * 10n ** BigInt(decimals - currencyDecimals) : BigInt(minor) / 10n ** BigInt(currencyDecimals - decimals);

/** `12500000n`, 6 → "12.50" (at least the currency's decimals, trailing zeros beyond trimmed). */
export function formatUnits(units: bigint, decimals: number, minDecimals: number): string {
  const neg = units < 0n;
  const s = (neg ? -units : units).toString().padStart(decimals + 1, '0');
  const whole = s.slice(0, s.length - decimals) || '0';
  let frac = decimals ? s.slice(s.length - decimals) : '';
  while (frac.length > minDecimals && frac.endsWith('0')) frac = frac.slice(0, -1);
  return `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

export function currencyDecimals(currency: string): number {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}
