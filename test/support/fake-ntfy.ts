/**
 * A fake ntfy server on 127.0.0.1 (ntfy's publish API: `POST /<topic>` with the message as the body
 * and Title/Tags/Click headers, answering `{ id, topic, message }`). It records every message and can
 * be told to answer the next requests with an HTTP error.
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
  tags: string | null;
  click: string | null;
  messageId: string | null;
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
      const topic = decodeURIComponent((req.url ?? '/').slice(1));
      if (req.method !== 'POST' || !/^[A-Za-z0-9_-]{1,64}$/.test(topic)) return res.writeHead(404).end();
      if (fault && fault.times > 0) {
        fault.times -= 1;
        return res.writeHead(fault.status, { 'Content-Type': 'application/json' }).end(JSON.stringify({ code: fault.status * 100, error: 'fake failure' }));
      }
      const header = (name: string) => (typeof req.headers[name] === 'string' ? (req.headers[name] as string) : null);
      n += 1;
      const message: NtfyMessage = { id: `ntfy${n}`, topic, text: Buffer.concat(chunks).toString('utf8'), title: header('title'), tags: header('tags'), click: header('click'), messageId: header('x-message-id') };
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
