/**
 * One webhook request, Standard Webhooks style, and nothing a receiver does can hold us up:
 * - the address is checked when the socket connects (request-filtering-agent: loopback, private,
 *   link-local and cloud metadata, CGNAT, multicast, IPv4-mapped IPv6, unique-local — also for a
 *   name that resolves to one), unless the install allows private addresses (tests, development);
 * - redirects are never followed (a 3xx is an answer, and a failure);
 * - the whole exchange has a deadline (15 s), and the body is read for at most a short while and
 *   only its first 1 KB is kept: a slow drip or a huge body ends with the socket destroyed.
 */
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { createHmac, randomBytes } from 'node:crypto';
import { RequestFilteringHttpAgent, RequestFilteringHttpsAgent } from 'request-filtering-agent';

export const SECRET_PREFIX = 'whsec_';
export const TIMEOUT_MS = 15_000;
/** How long the body may take once the status line and headers are in. */
export const BODY_TIME_MS = 3_000;
export const RESPONSE_KEEP_BYTES = 1024;
/** Connections kept open per host (tries run on a few job lanes, so few are ever in use at once). */
const MAX_SOCKETS_PER_HOST = 8;
/** A kept connection idle this long is closed (ms). */
export const IDLE_SOCKET_MS = 4_000;

/** A new signing secret: `whsec_` + base64 of 32 random bytes (the spec allows 24–64). */
export function newSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the secret's base64 part. */
export function sign(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

export interface SendRequest {
  url: string;
  /** The message id (`webhook-id`), the same on every try. */
  id: string;
  /** Seconds since the epoch (`webhook-timestamp`). */
  timestamp: number;
  body: string;
  /** The secrets that sign: the current one, plus the previous during a rotation's overlap. */
  secrets: string[];
}

export interface SendResult {
  statusCode: number | null;
  headers: http.IncomingHttpHeaders;
  /** The first 1 KB of the body (UTF-8, possibly cut mid-character). */
  response: string | null;
  /** Why no answer came (refused address, timeout, connection error). */
  error: string | null;
  latencyMs: number;
}

export interface SenderOptions {
  allowPrivate: boolean;
  /** DNS lookup used when connecting (tests resolve names they control). */
  lookup?: LookupFunction;
  timeoutMs?: number;
  bodyTimeMs?: number;
}

export type Sender = (req: SendRequest) => Promise<SendResult>;

export function createSender(opts: SenderOptions): Sender {
  const filter = { allowPrivateIPAddress: opts.allowPrivate, allowMetaIPAddress: false };
  // Connections are kept open between tries to the same host (a busy endpoint takes thousands of
  // events): the address is checked when a connection is made, and a kept one stays on the address
  // that was checked. One left idle longer than IDLE_SOCKET_MS is closed, before most servers close
  // theirs (5 s is common); a request that still meets one closed under it is sent again at once.
  const agentOptions = { ...filter, keepAlive: true, maxSockets: MAX_SOCKETS_PER_HOST, maxFreeSockets: MAX_SOCKETS_PER_HOST, timeout: IDLE_SOCKET_MS, scheduling: 'lifo' as const };
  const agents = { http: new RequestFilteringHttpAgent(agentOptions), https: new RequestFilteringHttpsAgent(agentOptions) };
  const timeoutMs = opts.timeoutMs ?? TIMEOUT_MS;
  const bodyTimeMs = opts.bodyTimeMs ?? BODY_TIME_MS;

  return async (r) => {
    const first = await attempt(r);
    // The server closed a kept connection just as we reused it (the reset comes at once, before any
    // answer): send again on a new one. Were it a real failure, a repeat is one receivers expect of
    // at-least-once delivery, with the same webhook-id.
    return first.staleSocket ? (await attempt(r)).result : first.result;
  };

  function attempt(r: SendRequest): Promise<{ result: SendResult; staleSocket: boolean }> {
    return new Promise((resolveAttempt) => {
      let staleSocket = false;
      const resolve = (result: SendResult) => resolveAttempt({ result, staleSocket });
      const started = performance.now();
      let done = false;
      const finish = (out: Omit<SendResult, 'latencyMs'>) => {
        if (done) return;
        done = true;
        clearTimeout(deadline);
        resolve({ ...out, latencyMs: Math.round(performance.now() - started) });
      };
      let url: URL;
      try {
        url = new URL(r.url);
      } catch {
        return finish({ statusCode: null, headers: {}, response: null, error: 'The URL is not valid.' });
      }
      const secure = url.protocol === 'https:';
      const headers = {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(r.body)),
        'user-agent': 'Paylink-Webhooks/1',
        'webhook-id': r.id,
        'webhook-timestamp': String(r.timestamp),
        'webhook-signature': r.secrets.map((s) => sign(s, r.id, r.timestamp, r.body)).join(' '),
      };
      const req = (secure ? https : http).request(url, { method: 'POST', headers, agent: secure ? agents.https : agents.http, lookup: opts.lookup });
      const deadline = setTimeout(() => {
        req.destroy();
        finish({ statusCode: null, headers: {}, response: null, error: `No answer within ${Math.round(timeoutMs / 1000)} s.` });
      }, timeoutMs);
      let answered = false;
      req.on('error', (err) => {
        staleSocket = !answered && req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET';
        finish({ statusCode: null, headers: {}, response: null, error: describe(err) });
      });
      req.on('response', (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        let kept = 0;
        /** `whole`: the body was read to its end, so the connection can serve the next try. */
        const settle = (whole: boolean) => {
          clearTimeout(bodyTimer);
          finish({ statusCode: res.statusCode ?? null, headers: res.headers, response: Buffer.concat(chunks).toString('utf8'), error: null });
          // Whatever is left unread is not wanted: close the connection rather than drain it.
          if (!whole) res.destroy();
        };
        // The status is what counts; the body is for the log. Stop reading at 1 KB or after the time allowed.
        const bodyTimer = setTimeout(() => settle(false), bodyTimeMs);
        res.on('data', (chunk: Buffer) => {
          if (kept < RESPONSE_KEEP_BYTES) {
            const part = chunk.subarray(0, RESPONSE_KEEP_BYTES - kept);
            chunks.push(part);
            kept += part.length;
          }
          if (kept >= RESPONSE_KEEP_BYTES) settle(false);
        });
        res.on('end', () => settle(true));
        res.on('error', () => settle(false));
        res.on('aborted', () => settle(false));
      });
      req.end(r.body);
    });
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text = e?.message ?? String(err);
  if (/is not allowed/.test(text)) return `Refused: the address is private or reserved (${text.replace(/^.*DNS lookup /, '').replace(/\(family.*$/, '').trim()}).`;
  return (e?.code ? `${e.code}: ` : '') + text.replace(/\s+/g, ' ').slice(0, 400);
}
