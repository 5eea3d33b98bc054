/**
 * A real EVM chain for tests: ganache 7 on loopback (its clock starting at the test clock's time),
 * an ERC-20 compiled from test/fixtures/erc20/TestToken.sol deployed on it, funded test wallets, and
 * a JSON-RPC proxy that can fail on demand (HTTP 503, dropped connections) and logs what it forwards.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import ganache from 'ganache';
import { createPublicClient, createWalletClient, http as httpTransport, type Abi, type Hex } from 'viem';
import { mnemonicToAccount } from 'viem/accounts';

export const TEST_MNEMONIC = 'test test test test test test test test test test test junk';
/** The account-level xpub (m/44'/60'/0') of TEST_MNEMONIC, as a wallet exports it. */
export const TEST_XPUB = 'xpub6Ce9NcJvTk36xtLSrJLZqE7wtgA5deCeYs7rSQtreh4cj6ByPtrg9sD7V2FNFLPnf8heNP3FGkeV9qwfzvZNSd54JoNXVsXFYSYwHsnJxqP';
export const CHAIN_ID = 1337;

const artifact = JSON.parse(fs.readFileSync(new URL('../fixtures/erc20/TestToken.json', import.meta.url), 'utf8')) as { abi: Abi; bytecode: Hex };
/** Payers: accounts of another mnemonic, so no payer is ever one of the merchant's addresses. */
const PAYER_MNEMONIC = 'legal winner thank year wave sausage worth useful legal winner thank yellow';

export interface Chain {
  url: string;
  payer(i: number): ReturnType<typeof mnemonicToAccount>;
  deploy(symbol: string, decimals: number): Promise<Hex>;
  /** A token transfer from payer `from`; mined at once (one block). Returns the tx hash. */
  transfer(token: Hex, from: number, to: Hex, amount: bigint): Promise<Hex>;
  /** A plain value transfer of the chain's own coin from payer `from` (wei); mined at once. Returns the tx hash. */
  sendValue(from: number, to: Hex, wei: bigint): Promise<Hex>;
  mine(blocks: number): Promise<void>;
  /** Moves the chain's clock (the next block's timestamp) forward. */
  increaseTime(seconds: number): Promise<void>;
  blockNumber(): Promise<number>;
  snapshot(): Promise<string>;
  revert(id: string): Promise<void>;
  rpc<T>(method: string, params?: unknown[]): Promise<T>;
  close(): Promise<void>;
}

export async function startChain(start: Date): Promise<Chain> {
  const server = ganache.server({
    chain: { chainId: CHAIN_ID, time: start },
    wallet: { mnemonic: PAYER_MNEMONIC, totalAccounts: 4, defaultBalance: 1000 },
    logging: { quiet: true },
    miner: { instamine: 'strict' },
  } as never);
  await server.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const transport = httpTransport(url);
  const pub = createPublicClient({ transport });
  const chainDef = { id: CHAIN_ID, name: 'ganache', nativeCurrency: { name: 'ETH', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [url] } } } as const;
  const payer = (i: number) => mnemonicToAccount(PAYER_MNEMONIC, { addressIndex: i });
  const wallet = (i: number) => createWalletClient({ account: payer(i), chain: chainDef, transport });
  const rpc = <T>(method: string, params: unknown[] = []) => pub.request({ method: method as never, params: params as never }) as Promise<T>;
  const mined = async (hash: Hex) => {
    const r = await pub.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    if (r.status !== 'success') throw new Error(`transaction ${hash} reverted`);
    return r;
  };
  return {
    url,
    payer,
    async deploy(symbol, decimals) {
      // Explicit gas: viem's estimate against ganache made the deploy revert (TOOLCHAIN.md).
      const hash = await wallet(0).deployContract({ abi: artifact.abi, bytecode: artifact.bytecode, args: [`Test ${symbol}`, symbol, decimals, 10n ** BigInt(decimals + 12)], gas: 3_000_000n });
      const r = await mined(hash);
      for (let i = 1; i < 4; i++) await mined(await wallet(0).writeContract({ address: r.contractAddress!, abi: artifact.abi, functionName: 'transfer', args: [payer(i).address, 10n ** BigInt(decimals + 9)], gas: 100_000n }));
      return r.contractAddress!;
    },
    async transfer(token, from, to, amount) {
      const hash = await wallet(from).writeContract({ address: token, abi: artifact.abi, functionName: 'transfer', args: [to, amount], gas: 100_000n });
      await mined(hash);
      return hash;
    },
    async sendValue(from, to, wei) {
      const hash = await wallet(from).sendTransaction({ to, value: wei, gas: 21_000n });
      await mined(hash);
      return hash;
    },
    async mine(blocks) {
      for (let i = 0; i < blocks; i++) await rpc('evm_mine');
    },
    async increaseTime(seconds) {
      await rpc('evm_increaseTime', [seconds]);
    },
    blockNumber: async () => Number(await pub.getBlockNumber({ cacheTime: 0 })),
    snapshot: () => rpc<string>('evm_snapshot'),
    async revert(id) {
      await rpc('evm_revert', [id]);
    },
    rpc,
    close: () => server.close(),
  };
}

export type ProxyFault = 'none' | '503' | 'drop';

/** A JSON-RPC proxy in front of `target`: `fail(method, n, fault)` makes the next n calls of `method` fail. */
export async function rpcProxy(target: string) {
  const faults: { method: string; left: number; fault: ProxyFault; after: number }[] = [];
  const log: { method: string; params: unknown[]; failed: boolean }[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const msg = JSON.parse(body) as { method: string; params: unknown[] };
    const f = faults.find((x) => (x.method === msg.method || x.method === '*') && x.left > 0);
    if (f && f.after > 0) f.after--;
    else if (f) {
      f.left--;
      log.push({ method: msg.method, params: msg.params, failed: true });
      if (f.fault === 'drop') return void req.socket.destroy();
      return void res.writeHead(503).end('unavailable');
    }
    log.push({ method: msg.method, params: msg.params, failed: false });
    const up = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    res.writeHead(up.status, { 'content-type': 'application/json' }).end(await up.text());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    /** The next `times` calls of `method` (`*`: any) fail with `fault`, after letting `after` of them through. */
    fail(method: string, times: number, fault: ProxyFault = '503', after = 0) {
      faults.push({ method, left: times, fault, after });
    },
    heal() {
      faults.length = 0;
    },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
