/**
 * A fake ntfy server on 127.0.0.1 (ntfy's JSON publish API: `POST /` with `{ topic, message, title,
 * tags, click }`, answering `{ id, topic, message }`). It records every message and can be told to
 * answer the next requests with an HTTP error.
 *
 * @example
 * const ntfy = await startFakeNtfy();
 * ntfy.fail(503, 1);            // the next publish answers HTTP 503
 * ntfy.messages[0].topic
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

export interface NtfyMessage {
  id: string;
  topic: string;
  text: string;
  title: string | null;
  /** The tags, comma-separated. */
  tags: string | null;
  click: string | null;
}

export interface FakeNtfy {
  readonly url: string;
  readonly messages: NtfyMessage[];
  /** Answers the next `times` publishes with `status`. */
  fail(status: number, times?: number): void;
  close(): Promise<void>;
}

export async function startFakeNtfy(): Promise<FakeNtfy> {
  const messages: NtfyMessage[] = [];
  let fault: { status: number; times: number } | null = null;
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return res.writeHead(400).end('{"code":40001,"error":"invalid request: body must be JSON"}');
      }
      const topic = typeof body.topic === 'string' ? body.topic : '';
      if (req.method !== 'POST' || req.url !== '/' || !/^[A-Za-z0-9_-]{1,64}$/.test(topic)) return res.writeHead(400).end('{"code":40009,"error":"invalid topic"}');
      if (fault && fault.times > 0) {
        fault.times -= 1;
        return res.writeHead(fault.status, { 'Content-Type': 'application/json' }).end(JSON.stringify({ code: fault.status * 100, error: 'fake failure' }));
      }
      const text = (v: unknown) => (typeof v === 'string' ? v : null);
      n += 1;
      const message: NtfyMessage = {
        id: `ntfy${n}`,
        topic,
        text: text(body.message) ?? '',
        title: text(body.title),
        tags: Array.isArray(body.tags) ? body.tags.join(',') : null,
        click: text(body.click),
      };
      messages.push(message);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: message.id, topic, message: message.text }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    messages,
    fail(status, times = 1) {
      fault = { status, times };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
