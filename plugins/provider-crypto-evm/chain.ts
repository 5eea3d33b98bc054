/**
 * The chain side of provider-crypto-evm: addresses derived from the merchant's extended public key
 * (BIP-32, never a private key), and a small JSON-RPC client that retries with backoff.
 */
import { HDKey } from '@scure/bip32';
import { secp256k1 } from '@noble/curves/secp256k1';
import { bytesToHex, getAddress, pad } from 'viem';
import { publicKeyToAddress } from 'viem/accounts';

/** keccak256("Transfer(address,address,uint256)") */
export const TRANSFER_TOPIC = '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';

/** An extended public key (xpub/tpub/…), or null when it is not one. */
export function parseXpub(input: string): HDKey | null {
  const s = String(input ?? '').trim();
  if (!/^[a-zA-Z0-9]{100,120}$/.test(s)) return null;
  for (const versions of [undefined, { private: 0x04358394, public: 0x043587cf }]) {
    try {
      const key = HDKey.fromExtendedKey(s, versions);
      if (key.privateKey) return null; // an xprv: Paylink never takes one
      if (key.publicKey) return key;
    } catch {
      /* next */
    }
  }
  return null;
}

/**
 * The receiving address number `index` of an account-level xpub (m/44'/60'/0' in most wallets):
 * child 0 (external chain), then `index` — the same as the wallet's address #index.
 */
export function deriveAddress(xpub: HDKey, index: number): `0x${string}` {
  const child = xpub.deriveChild(0).deriveChild(index);
  const uncompressed = secp256k1.ProjectivePoint.fromHex(child.publicKey!).toRawBytes(false);
  return getAddress(publicKeyToAddress(bytesToHex(uncompressed)));
}

/** An address as a 32-byte log topic. */
export const addressTopic = (address: string) => pad(address.toLowerCase() as `0x${string}`, { size: 32 });

export interface RpcLog {
  address: string;
  topics: string[];
  data: string;
  blockNumber: string;
  blockHash: string;
  transactionHash: string;
  logIndex: string;
  removed?: boolean;
}

export interface RpcBlock {
  number: string;
  hash: string;
  timestamp: string;
  transactions: { hash: string; to: string | null; value: string }[];
}

export class RpcError extends Error {
  constructor(message: string, readonly retryable: boolean) {
    super(message);
    this.name = 'RpcError';
  }
}

export interface RpcOptions {
  /** Attempts per call (first try included). */
  attempts?: number;
  /** First backoff in ms; doubles each retry. */
  backoffMs?: number;
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** A JSON-RPC client for one network: each call is retried with exponential backoff on transport errors, 5xx and 429. */
export function rpcClient(url: string, opts: RpcOptions = {}) {
  const attempts = opts.attempts ?? 4;
  const backoff = opts.backoffMs ?? 250;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let id = 0;
  async function once(method: string, params: unknown[]): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params }),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
      });
    } catch (err) {
      throw new RpcError(`${method}: ${(err as Error).message}`, true);
    }
    if (!res.ok) throw new RpcError(`${method}: HTTP ${res.status}`, res.status >= 500 || res.status === 429);
    let body: { result?: unknown; error?: { code?: number; message?: string } };
    try {
      body = (await res.json()) as typeof body;
    } catch (err) {
      throw new RpcError(`${method}: unreadable answer (${(err as Error).message})`, true);
    }
    if (body.error) throw new RpcError(`${method}: ${body.error.message ?? 'error'} (${body.error.code ?? '?'})`, body.error.code === -32005 || body.error.code === -32603);
    return body.result;
  }
  async function call<T>(method: string, params: unknown[] = []): Promise<T> {
    for (let i = 1; ; i++) {
      try {
        return (await once(method, params)) as T;
      } catch (err) {
        if (!(err instanceof RpcError) || !err.retryable || i >= attempts) throw err;
        await sleep(backoff * 2 ** (i - 1));
      }
    }
  }
  const hex = (n: number) => `0x${n.toString(16)}`;
  return {
    call,
    async blockNumber(): Promise<number> {
      return Number(BigInt(await call<string>('eth_blockNumber')));
    },
    async blockTime(n: number): Promise<number> {
      const b = await call<{ timestamp: string } | null>('eth_getBlockByNumber', [hex(n), false]);
      if (!b) throw new RpcError(`block ${n} not found`, true);
      return Number(BigInt(b.timestamp));
    },
    /** Block `n` with its transactions (hash, to, value), for native-coin transfers. */
    async blockWithTxs(n: number): Promise<RpcBlock> {
      const b = await call<RpcBlock | null>('eth_getBlockByNumber', [hex(n), true]);
      if (!b || !Array.isArray(b.transactions)) throw new RpcError(`block ${n} not found`, true);
      return b;
    },
    /** A transaction's receipt, or null when the node does not know it (never mined, or reorganised away). */
    async receipt(txHash: string): Promise<{ status?: string; blockNumber: string } | null> {
      return call<{ status?: string; blockNumber: string } | null>('eth_getTransactionReceipt', [txHash]);
    },
    /** Whether a mined transaction succeeded (a reverted one moved no value). */
    async succeeded(txHash: string): Promise<boolean> {
      const r = await call<{ status?: string } | null>('eth_getTransactionReceipt', [txHash]);
      if (!r) throw new RpcError(`receipt of ${txHash} not found`, true);
      return r.status === undefined || BigInt(r.status) === 1n;
    },
    /** Transfer logs of `tokens` to any of `to`, in [from, to] inclusive. */
    async transfers(tokens: string[], recipients: string[], from: number, toBlock: number): Promise<RpcLog[]> {
      const logs = await call<RpcLog[]>('eth_getLogs', [{ fromBlock: hex(from), toBlock: hex(toBlock), address: tokens, topics: [TRANSFER_TOPIC, null, recipients.map(addressTopic)] }]);
      if (!Array.isArray(logs)) throw new RpcError('eth_getLogs: not a list', true);
      return logs.filter((l) => !l.removed);
    },
  };
}

export type RpcClient = ReturnType<typeof rpcClient>;
