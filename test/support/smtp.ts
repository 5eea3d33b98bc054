/**
 * A real SMTP server (smtp-server) on 127.0.0.1 for tests. It keeps every message it accepts (raw
 * and parsed), can answer a stage with an SMTP error (421/451 temporary, 550 for a recipient), can
 * require a login, and can go down and come back up on the same port (SMTP outage → recovery).
 *
 * @example
 * const smtp = await startSmtp();
 * smtp.fail('rcpt', 451, 'Try again later', 1);   // the next RCPT TO answers 451 once
 * smtp.rejectRecipient('nobody@example.test');    // 550 No such user, every time
 * await smtp.down(); await smtp.up();
 * smtp.messages[0].headers.get('subject')
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerError } from 'smtp-server';

export interface ReceivedMail {
  /** MAIL FROM and RCPT TO as the server saw them. */
  envelope: { from: string; to: string[] };
  raw: string;
  /** Unfolded, RFC 2047-decoded header values by lower-case name (a name may repeat). */
  headers: MailHeaders;
  text: string | null;
  html: string | null;
}

export type SmtpStage = 'connect' | 'mail' | 'rcpt' | 'data';

interface Fault {
  stage: SmtpStage;
  code: number;
  message: string;
  times: number;
}

export interface SmtpOptions {
  /** Require AUTH with these credentials (the URL then carries them). */
  auth?: { user: string; pass: string };
  /** Called for each message accepted (after it is added to `messages`). */
  onMessage?: (mail: ReceivedMail) => void;
}

export interface TestSmtp {
  /** smtp://[user:pass@]127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  readonly messages: ReceivedMail[];
  /** SMTP sessions opened so far (a client that reuses its connections opens few). */
  readonly connections: number;
  /** Answers `stage` with `code message` for the next `times` commands (default: until cleared). */
  fail(stage: SmtpStage, code: number, message: string, times?: number): void;
  /** RCPT TO this address answers 550 (or `code`). */
  rejectRecipient(address: string, code?: number, message?: string): void;
  /** Answers each message's DATA `ms` later (a slow server); 0 answers at once. */
  delay(ms: number): void;
  /** Forgets faults, rejected recipients and the delay. */
  reset(): void;
  /** Stops listening (connections are refused) until up(). */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startSmtp(opts: SmtpOptions = {}): Promise<TestSmtp> {
  const messages: ReceivedMail[] = [];
  let faults: Fault[] = [];
  let rejected = new Map<string, { code: number; message: string }>();
  let server: SMTPServer | null = null;
  let port = 0;
  let connections = 0;
  let delayMs = 0;

  const smtpError = (code: number, message: string): SMTPServerError => Object.assign(new Error(message), { responseCode: code });
  /** The error the next `stage` command must answer, if a fault is armed for it. */
  const faultFor = (stage: SmtpStage): SMTPServerError | null => {
    const f = faults.find((x) => x.stage === stage && x.times > 0);
    if (!f) return null;
    f.times -= 1;
    return smtpError(f.code, f.message);
  };

  const listen = async () => {
    server = new SMTPServer({
      logger: false,
      secure: false,
      disabledCommands: opts.auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
      authOptional: !opts.auth,
      allowInsecureAuth: true,
      closeTimeout: 200,
      onAuth(auth, _session, cb) {
        if (auth.username === opts.auth?.user && auth.password === opts.auth?.pass) return cb(null, { user: auth.username });
        cb(smtpError(535, 'Authentication credentials invalid'));
      },
      onConnect(_session, cb) {
        connections++;
        cb(faultFor('connect'));
      },
      onMailFrom(_address, _session, cb) {
        cb(faultFor('mail'));
      },
      onRcptTo(address, _session, cb) {
        const r = rejected.get(address.address.toLowerCase());
        cb(r ? smtpError(r.code, r.message) : faultFor('rcpt'));
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const fault = faultFor('data');
          if (fault) return cb(fault);
          const raw = Buffer.concat(chunks).toString('utf8');
          const envelope = {
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
          };
          const accept = () => {
            const mail = { envelope, raw, ...parseMail(raw) };
            messages.push(mail);
            cb(null);
            opts.onMessage?.(mail);
          };
          if (delayMs > 0) setTimeout(accept, delayMs);
          else accept();
        });
      },
    });
    server.on('error', () => {});
    server.listen(port, '127.0.0.1');
    await once(server.server, 'listening');
    port = (server.server.address() as AddressInfo).port;
  };
  const stop = async () => {
    if (!server) return;
    const s = server;
    server = null;
    await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  await listen();
  const credentials = opts.auth ? `${encodeURIComponent(opts.auth.user)}:${encodeURIComponent(opts.auth.pass)}@` : '';
  return {
    url: `smtp://${credentials}127.0.0.1:${port}`,
    port,
    messages,
    get connections() {
      return connections;
    },
    fail(stage, code, message, times = Infinity) {
      faults.push({ stage, code, message, times });
    },
    rejectRecipient(address, code = 550, message = 'No such user') {
      rejected.set(address.toLowerCase(), { code, message });
    },
    delay(ms) {
      delayMs = ms;
    },
    reset() {
      faults = [];
      rejected = new Map();
      delayMs = 0;
    },
    down: stop,
    up: async () => {
      if (!server) await listen();
    },
    close: stop,
  };
}

// ---------------------------------------------------------------------------------------------
// A tiny MIME reader (mailparser does not install here): headers, multipart, QP/base64, RFC 2047.

/** Header values by lower-case name, in order. */
export class MailHeaders {
  private readonly map = new Map<string, string[]>();
  add(name: string, value: string): void {
    const key = name.toLowerCase();
    this.map.set(key, [...(this.map.get(key) ?? []), value]);
  }
  /** The first value of a header, or undefined. */
  get(name: string): string | undefined {
    return this.map.get(name.toLowerCase())?.[0];
  }
  all(name: string): string[] {
    return this.map.get(name.toLowerCase()) ?? [];
  }
  names(): string[] {
    return [...this.map.keys()];
  }
}

function splitHead(raw: string): { head: string; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  return m ? { head: raw.slice(0, m.index), body: raw.slice(m.index + m[0].length) } : { head: raw, body: '' };
}

/** Decodes RFC 2047 encoded words (`=?UTF-8?Q?...?=`, `=?UTF-8?B?...?=`). */
export function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[bqBQ]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?]+)\?([bqBQ])\?([^?]*)\?=/g, (_m, charset: string, enc: string, text: string) => {
      const bytes = enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64') : qpBytes(text.replace(/_/g, ' '));
      return bytes.toString(charset.toLowerCase().replace(/\*.*$/, '') === 'utf-8' ? 'utf8' : 'latin1');
    });
}

function qpBytes(text: string): Buffer {
  // In bytes: `=` and hex digits are ASCII, so an escape never straddles a multi-byte character.
  const src = Buffer.from(text.replace(/=\r?\n/g, ''), 'utf8');
  const out = Buffer.allocUnsafe(src.length);
  const hex = (b: number) => (b >= 48 && b <= 57 ? b - 48 : b >= 65 && b <= 70 ? b - 55 : b >= 97 && b <= 102 ? b - 87 : -1);
  let n = 0;
  for (let i = 0; i < src.length; i++) {
    const hi = src[i] === 61 && i + 2 < src.length ? hex(src[i + 1] ?? 0) : -1;
    const lo = hi >= 0 ? hex(src[i + 2] ?? 0) : -1;
    if (lo >= 0) {
      out[n++] = hi * 16 + lo;
      i += 2;
    } else {
      out[n++] = src[i]!;
    }
  }
  return out.subarray(0, n);
}

function parseHeaders(head: string): MailHeaders {
  const headers = new MailHeaders();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers.add(line.slice(0, i).trim(), decodeWords(line.slice(i + 1).trim()));
  }
  return headers;
}

function param(value: string | undefined, name: string): string | undefined {
  const m = new RegExp(`${name}="?([^";]+)"?`, 'i').exec(value ?? '');
  return m?.[1];
}

function decodeBody(body: string, headers: MailHeaders): string {
  const enc = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  const bytes = enc === 'base64' ? Buffer.from(body.replace(/\s+/g, ''), 'base64') : enc === 'quoted-printable' ? qpBytes(body) : Buffer.from(body, 'utf8');
  return bytes.toString('utf8');
}

/** The text/plain and text/html bodies of a message, following multipart/* recursively. */
export function parseMail(raw: string): { headers: MailHeaders; text: string | null; html: string | null } {
  const { head, body } = splitHead(raw);
  const headers = parseHeaders(head);
  const found = { text: null as string | null, html: null as string | null };
  const walk = (h: MailHeaders, b: string) => {
    const type = (h.get('content-type') ?? 'text/plain').toLowerCase();
    const boundary = param(h.get('content-type'), 'boundary');
    if (type.startsWith('multipart/') && boundary) {
      const parts = b.split(`--${boundary}`).slice(1);
      for (const part of parts) {
        if (part.startsWith('--')) break;
        const p = splitHead(part.replace(/^\r?\n/, ''));
        walk(parseHeaders(p.head), p.body.replace(/\r?\n$/, ''));
      }
    } else if (type.startsWith('text/html')) {
      found.html ??= decodeBody(b, h);
    } else if (type.startsWith('text/plain')) {
      found.text ??= decodeBody(b, h);
    }
  };
  walk(headers, body.replace(/\r?\n$/, '')); // the CRLF before the DATA terminator is not content
  return { headers, ...found };
}
