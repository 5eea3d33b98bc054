/**
 * A fake Vonage on 127.0.0.1 for the real @vonage/server-sdk: the legacy SMS API (`POST /sms/json`,
 * form or JSON body, key/secret in the body or Basic auth) and the Messages API (`POST /v1/messages`,
 * Basic auth or a JWT bearer). Serve it as both restHost and apiHost. It records every request, checks
 * credentials like Vonage does (SMS: status "4" Bad Credentials; Messages: HTTP 401), and can be told
 * to answer the next requests with an HTTP error or an SMS status error.
 *
 * @example
 * const vonage = await startFakeVonage({ apiKey: 'k', apiSecret: 's' });
 * vonage.failHttp('sms', 503);                       // the next SMS request answers HTTP 503
 * vonage.failSms('1', 'Throughput Rate Exceeded');   // the next SMS answers status "1"
 * vonage.requests[0].body.to
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

export type VonageApi = 'sms' | 'messages';

export interface VonageRequest {
  api: VonageApi;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Parsed form or JSON body. */
  body: Record<string, unknown>;
  /** How the caller authenticated, as the fake saw it. */
  auth: { kind: 'basic'; user: string; pass: string } | { kind: 'body'; user: string; pass: string } | { kind: 'jwt'; claims: Record<string, unknown> } | null;
}

interface HttpFault {
  api: VonageApi;
  status: number;
  body: Record<string, unknown> | null;
  times: number;
}

export interface FakeVonage {
  /** http://127.0.0.1:<port>: pass as restHost and apiHost. */
  readonly url: string;
  readonly requests: VonageRequest[];
  /** The next `times` requests to `api` answer HTTP `status` (with a Vonage-style problem body unless given). */
  failHttp(api: VonageApi, status: number, body?: Record<string, unknown> | null, times?: number): void;
  /** The next `times` SMS answer HTTP 200 with this message status and error text. */
  failSms(status: string, errorText: string, times?: number): void;
  reset(): void;
  close(): Promise<void>;
}

const TITLES: Record<number, [string, string]> = {
  400: ['Bad Request', 'The request body did not contain valid JSON.'],
  401: ['Unauthorized', 'You did not provide correct credentials.'],
  403: ['Forbidden', 'Your account does not have permission to perform this action.'],
  422: ['Invalid params', 'The value of one or more parameters is invalid.'],
  429: ['Rate Limit Hit', 'Please wait, then retry your request.'],
  500: ['Internal Error', 'There was an error processing your request in the Platform.'],
  503: ['Service Unavailable', 'The service is temporarily unavailable.'],
};

function problem(status: number): Record<string, unknown> {
  const [title, detail] = TITLES[status] ?? ['Error', `HTTP ${status}`];
  return { type: `https://developer.vonage.com/api-errors#${status}`, title, detail, instance: `fake-${Date.now()}` };
}

function parseBody(raw: string, type: string | undefined): Record<string, unknown> {
  if ((type ?? '').startsWith('application/json')) return raw ? JSON.parse(raw) : {};
  return Object.fromEntries(new URLSearchParams(raw));
}

function authOf(req: http.IncomingMessage, body: Record<string, unknown>): VonageRequest['auth'] {
  const header = req.headers.authorization ?? '';
  if (header.startsWith('Basic ')) {
    const [user, ...rest] = Buffer.from(header.slice(6), 'base64').toString('utf8').split(':');
    return { kind: 'basic', user, pass: rest.join(':') };
  }
  if (header.startsWith('Bearer ')) {
    const payload = header.slice(7).split('.')[1] ?? '';
    return { kind: 'jwt', claims: JSON.parse(Buffer.from(payload, 'base64url').toString('utf8') || '{}') };
  }
  if (typeof body.api_key === 'string') return { kind: 'body', user: body.api_key, pass: String(body.api_secret ?? '') };
  return null;
}

export async function startFakeVonage(credentials: { apiKey: string; apiSecret: string; applicationId?: string }): Promise<FakeVonage> {
  const requests: VonageRequest[] = [];
  let httpFaults: HttpFault[] = [];
  let smsFaults: { status: string; errorText: string; times: number }[] = [];
  let counter = 0;

  const authorised = (auth: VonageRequest['auth']) =>
    auth?.kind === 'jwt'
      ? auth.claims.application_id === credentials.applicationId
      : !!auth && auth.user === credentials.apiKey && auth.pass === credentials.apiSecret;

  const server = http.createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = new URL(req.url ?? '/', 'http://fake').pathname;
    const api: VonageApi | null = req.method === 'POST' && path === '/sms/json' ? 'sms' : req.method === 'POST' && path === '/v1/messages' ? 'messages' : null;
    if (!api) return send(404, problem(404));
    let body: Record<string, unknown>;
    try {
      body = parseBody(Buffer.concat(chunks).toString('utf8'), req.headers['content-type']);
    } catch {
      return send(400, problem(400));
    }
    const auth = authOf(req, body);
    requests.push({ api, method: req.method!, path, headers: req.headers, body, auth });

    const fault = httpFaults.find((f) => f.api === api && f.times > 0);
    if (fault) {
      fault.times -= 1;
      return send(fault.status, fault.body ?? problem(fault.status));
    }
    counter += 1;
    if (api === 'messages') {
      if (!authorised(auth)) return send(401, problem(401));
      return send(202, { message_uuid: `aaaaaaaa-bbbb-4ccc-8ddd-${String(counter).padStart(12, '0')}` });
    }
    const smsFault = authorised(auth) ? smsFaults.find((f) => f.times > 0) : undefined;
    if (smsFault) smsFault.times -= 1;
    const error = authorised(auth) ? smsFault : { status: '4', errorText: 'Bad Credentials' };
    if (error) return send(200, { 'message-count': '1', messages: [{ status: error.status, 'error-text': error.errorText }] });
    send(200, {
      'message-count': '1',
      messages: [{ to: body.to, 'message-id': `SMS${String(counter).padStart(13, '0')}`, status: '0', 'remaining-balance': '9.87', 'message-price': '0.0333', network: '20416', 'client-ref': body['client-ref'] }],
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    failHttp(api, status, body = null, times = 1) {
      httpFaults.push({ api, status, body, times });
    },
    failSms(status, errorText, times = 1) {
      smsFaults.push({ status, errorText, times });
    },
    reset() {
      httpFaults = [];
      smsFaults = [];
      requests.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
