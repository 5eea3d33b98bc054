// channel-email: sends email over SMTP (SMTP_URL) with nodemailer. Without SMTP_URL it registers
// nothing, so channel-outbox keeps serving email. The Message-ID is derived from the delivery id,
// so a resend after a crash carries the same Message-ID and can be recognised downstream.
import net from 'node:net';
import nodemailer from 'nodemailer';
import { parseConnectionUrl } from 'nodemailer/lib/shared/index.js';
import { definePlugin, ProviderError, z } from 'paylink/plugin-api';

/** CR, LF and other control characters become spaces: a name or subject can never start a new header. */
const oneLine = (s: string) => s.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();

/**
 * How the message's text goes on the wire, chosen as nodemailer would (quoted-printable when Latin
 * letters outnumber other characters, base64 otherwise) but counted once, without allocating:
 * nodemailer's own check builds an array of every letter of each part, twice per part.
 */
function textEncoding(body: string): 'quoted-printable' | 'base64' {
  let latin = 0;
  let other = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) latin++;
    else if (c > 0x7f || c < 0x09 || c === 0x0b || c === 0x0c || (c >= 0x0e && c <= 0x1f)) other++;
  }
  return other < latin ? 'quoted-printable' : 'base64';
}

type SmtpError = Error & { code?: string; responseCode?: number; response?: string; command?: string };

const PERMANENT_CODES = ['EENVELOPE', 'EMESSAGE', 'EAUTH', 'ECONFIG'];
const refused = (command = '') =>
  command.startsWith('AUTH') ? 'the login' : command === 'RCPT TO' ? 'the recipient' : command === 'MAIL FROM' ? 'the sender' : ['CONN', 'EHLO'].includes(command) ? 'the connection' : 'the message';

/** SMTP 4xx and network trouble are worth retrying; 5xx answers and bad envelopes are not. */
function toProviderError(err: SmtpError): ProviderError {
  const code = err.responseCode;
  if (code && err.response) {
    const what = refused(err.command);
    return new ProviderError(`SMTP server refused ${what}: ${err.response}`, { retryable: code < 500, code: code < 500 ? 'smtp_temporary' : 'smtp_rejected', cause: err });
  }
  if (PERMANENT_CODES.includes(err.code ?? '')) return new ProviderError(`Email could not be sent: ${err.message}`, { retryable: false, cause: err });
  return new ProviderError(`Could not reach the SMTP server: ${err.message}`, { retryable: true, code: 'smtp_unreachable', cause: err });
}

export default definePlugin({
  id: 'channel-email',
  version: '1.0.0',
  apiVersion: 1,
  description: 'Sends email over SMTP (SMTP_URL, MAIL_FROM).',
  config: z.object({
    smtpUrl: z.string().regex(/^smtps?:\/\//, 'must start with smtp:// or smtps://').optional(),
    from: z.string().min(1).optional(),
  }),
  register(api, config) {
    if (!config.smtpUrl) return api.log.info('SMTP_URL not set; channel-outbox keeps email');
    const address = config.from ? (/<([^<>]+)>/.exec(config.from)?.[1] ?? config.from).trim() : `paylink@${new URL(api.baseUrl).hostname}`;
    const domain = address.split('@').pop() || new URL(api.baseUrl).hostname;
    const smtp = new URL(config.smtpUrl);
    const CONNECT_MS = 10_000;
    // The URL's parts as options beside ours: given `url`, createTransport would read the URL alone and
    // drop every other option (timeouts, the pool, file and URL access).
    const transport = nodemailer.createTransport({
      ...parseConnectionUrl(config.smtpUrl),
      connectionTimeout: CONNECT_MS,
      greetingTimeout: 10_000,
      // An idle pooled connection closes after this (so none lingers for long).
      socketTimeout: 20_000,
      disableFileAccess: true,
      disableUrlAccess: true,
      // A few connections, reused: a batch of messages does not pay for a new SMTP session each.
      pool: true,
      maxConnections: 4,
      maxMessages: 500,
      // SMTP is a conversation of short lines: with Nagle's algorithm on, each command waits for the
      // previous segment's delayed ACK (≈ 40 ms on Linux, several times per message). smtp:// (with
      // or without STARTTLS) gets a socket with TCP_NODELAY; smtps:// keeps nodemailer's own.
      getSocket: (_options: unknown, done: (err: Error | null, socket?: { connection: net.Socket } | false) => void) => {
        if (smtp.protocol !== 'smtp:') return done(null, false);
        const socket = net.connect({ host: smtp.hostname.replace(/^\[|\]$/g, ''), port: Number(smtp.port) || 587 });
        socket.setNoDelay(true);
        socket.setTimeout(CONNECT_MS);
        // Could not connect: nodemailer tries on its own, and reports the failure the way it always does
        // (a getSocket error would leave the pool's queued messages waiting forever).
        const fallBack = () => {
          socket.destroy();
          done(null, false);
        };
        socket.once('timeout', fallBack);
        socket.once('error', fallBack);
        socket.once('connect', () => {
          socket.setTimeout(0);
          socket.removeListener('error', fallBack);
          socket.removeListener('timeout', fallBack);
          done(null, { connection: socket });
        });
      },
    } as nodemailer.TransportOptions);
    api.channels.register({
      id: 'email',
      label: 'Email',
      address: 'email',
      async send(message) {
        if (/[\r\n]/.test(message.to)) throw new ProviderError('The recipient address is not valid', { retryable: false });
        const messageId = `<${message.id}@${domain}>`;
        try {
          await transport.sendMail({
            from: { name: oneLine(message.merchant.name), address },
            to: message.to,
            subject: oneLine(message.subject ?? ''),
            text: message.text,
            ...(message.html ? { html: message.html } : {}),
            textEncoding: textEncoding(message.html ?? message.text),
            messageId,
          });
        } catch (err) {
          throw toProviderError(err as SmtpError);
        }
        // The Message-ID, not the server's queue id: it is ours, stable per delivery, and visible in the mailbox.
        return { providerMessageId: messageId };
      },
    });
  },
});
