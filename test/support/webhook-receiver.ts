/**
 * A merchant's webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every
 * request and answers what the test tells it to (default 200). Verification uses `standardwebhooks`
 * (the reference library), with its timestamp tolerance measured on the test's clock rather than the
 * wall clock, since tests move time.
 *
 * @example
 * const hook = await startReceiver();
 * hook.answer(() => ({ status: 503, headers: { 'Retry-After': '120' } }));
 * verifier(secret, env.clock).verify(hook.received[0].body, hook.received[0].headers)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  /** What the receiver answered (null while held). */
  status: number | null;
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface TestReceiver {
  url: string;
  port: number;
  received: Received[];
  /** How to answer each request from now on (default: 200 "ok"). Return null to hold it unanswered. */
  answer(fn: (r: Received) => Answer | null): void;
  /** Answers every held request with 200 and stops holding. */
  release(): void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<TestReceiver> {
  const received: Received[] = [];
  let answerer: (r: Received) => Answer | null = () => ({ status: 200, body: 'ok' });
  const held: { r: Received; res: http.ServerResponse }[] = [];
  const reply = (r: Received, res: http.ServerResponse, a: Answer) => {
    r.status = a.status;
    res.writeHead(a.status, a.headers ?? {});
    res.end(a.body ?? '');
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      const r: Received = { path: req.url ?? '/', headers, body: Buffer.concat(chunks).toString('utf8'), status: null };
      received.push(r);
      const a = answerer(r);
      if (a) reply(r, res, a);
      else held.push({ r, res });
    });
  });
  server.keepAliveTimeout = 100;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    answer(fn) {
      answerer = fn;
    },
    release() {
      answerer = () => ({ status: 200, body: 'ok' });
      for (const h of held.splice(0)) if (!h.res.destroyed) reply(h.r, h.res, { status: 200 });
    },
    async close() {
      for (const h of held.splice(0)) h.res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The reference verifier for `secret`, with its 5-minute timestamp tolerance on `clock`. */
export function verifier(secret: string, clock: { now(): Date }): Webhook {
  const wh = new Webhook(secret);
  // verifyTimestamp is private in the typings; the library reads Date.now(), our tests move a manual clock.
  (wh as unknown as { verifyTimestamp: (h: string) => Date }).verifyTimestamp = (header: string) => {
    const ts = Number.parseInt(header, 10);
    const now = Math.floor(clock.now().getTime() / 1000);
    if (Number.isNaN(ts) || Math.abs(now - ts) > 300) throw new Error(`timestamp ${header} is not within 5 minutes of ${now}`);
    return new Date(ts * 1000);
  };
  return wh;
}
