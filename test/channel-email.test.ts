import { expect } from 'chai';
import { TARGETS } from './support/targets.ts';
import { build, type TestEnv } from './support/harness.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';
import type { Channel, OutgoingMessage } from '../src/plugin-api.ts';
import { providerFailure } from './support/channels.ts';

// The channel keeps no data: one target (embedded SQLite) is enough to prove the host wiring.
const target = TARGETS[0];

let sequence = 0;
function message(fields: Partial<OutgoingMessage> = {}): OutgoingMessage {
  sequence += 1;
  return {
    id: `dlv_email_${sequence}_${Date.now().toString(36)}`,
    merchant: { id: 'mer_test', name: 'Acme Fitness', brandColor: '#0a7cff' },
    to: 'john@example.test',
    subject: 'Your payment link',
    text: 'Hi John, pay here: http://pay.test/acme/yoga',
    html: '<p>Hi John, <a href="http://pay.test/acme/yoga">pay here</a> — thank you</p>',
    kind: 'initial',
    linkUrl: 'http://pay.test/acme/yoga',
    ...fields,
  };
}

describe('channel-email', () => {
  describe('with SMTP_URL and MAIL_FROM', () => {
    let smtp: TestSmtp;
    let env: TestEnv;
    let email: Channel;
    before(async () => {
      smtp = await startSmtp();
      env = await build(target, { env: { SMTP_URL: smtp.url, MAIL_FROM: 'pay@shop.test' } });
      email = env.rt.registries.channels.get('email')!;
    });
    after(async () => {
      await env?.close();
      await smtp?.close();
    });
    afterEach(() => smtp.reset());

    it('takes over email from channel-outbox, and leaves SMS and WhatsApp to it', () => {
      expect(env.rt.registries.channels.ownerOf('email')).to.equal('channel-email');
      expect(email.address).to.equal('email');
      expect(env.rt.registries.channels.ownerOf('sms')).to.equal('channel-outbox');
    });

    it('delivers the message with the merchant name in From, the subject, text and HTML bodies, and a Message-ID made of the delivery id', async () => {
      const sent = message();
      const result = await email.send(sent);

      expect(result.providerMessageId).to.equal(`<${sent.id}@shop.test>`);
      expect(smtp.messages).to.have.length(1);
      const mail = smtp.messages[0];
      expect(mail.envelope).to.deep.equal({ from: 'pay@shop.test', to: ['john@example.test'] });
      expect(mail.headers.get('from')).to.equal('Acme Fitness <pay@shop.test>');
      expect(mail.headers.get('to')).to.equal('john@example.test');
      expect(mail.headers.get('subject')).to.equal('Your payment link');
      expect(mail.headers.get('message-id')).to.equal(`<${sent.id}@shop.test>`);
      expect(mail.headers.get('content-type')).to.match(/^multipart\/alternative/);
      expect(mail.text).to.equal(sent.text);
      expect(mail.html).to.equal(sent.html);
    });

    it('reuses its SMTP connections: twenty messages, one after another, open one session', async () => {
      const before = smtp.connections;
      const sentBefore = smtp.messages.length;
      // A connection left from an earlier test may have timed out or been closed by the server: at most one new one.
      for (let i = 0; i < 20; i++) await email.send(message({ to: `reader${i}@example.test` }));
      expect(smtp.messages.length - sentBefore).to.equal(20);
      expect(smtp.connections - before).to.be.at.most(1);
    });

    it('sends a plain-text email when there is no HTML body, keeping non-ASCII text intact', async () => {
      smtp.messages.length = 0;
      await email.send(message({ html: undefined, subject: 'Zoë, your link — €12.50', text: 'Grüße, Zoë: http://pay.test/acme/12.50' }));
      const mail = smtp.messages[0];
      expect(mail.headers.get('content-type')).to.match(/^text\/plain/);
      expect(mail.html).to.equal(null);
      expect(mail.text).to.equal('Grüße, Zoë: http://pay.test/acme/12.50');
      expect(mail.headers.get('subject')).to.equal('Zoë, your link — €12.50');
    });

    it('puts text mostly in Latin letters on the wire quoted-printable, and text mostly in another script base64, intact either way', async () => {
      smtp.messages.length = 0;
      const latin = message({ subject: 'Grüße — €12.50', text: 'Grüße, Zoë: pay €12.50 here', html: '<p>Grüße, Zoë: pay <b>€12.50</b> here</p>' });
      const cyrillic = message({ subject: 'Ваша ссылка на оплату', text: 'Здравствуйте, Иван! Оплатите заказ по ссылке', html: '<p>Здравствуйте, Иван! Оплатите заказ по ссылке</p>' });
      await email.send(latin);
      await email.send(cyrillic);
      const [a, b] = smtp.messages;
      const encodings = (raw: string) => [...raw.matchAll(/^Content-Transfer-Encoding: (.+)$/gim)].map((m) => m[1].trim().toLowerCase());
      expect(encodings(a.raw)).to.deep.equal(['quoted-printable', 'quoted-printable']);
      expect(encodings(b.raw)).to.deep.equal(['base64', 'base64']);
      expect([a.text, a.html, a.headers.get('subject')]).to.deep.equal([latin.text, latin.html, latin.subject]);
      expect([b.text, b.html, b.headers.get('subject')]).to.deep.equal([cyrillic.text, cyrillic.html, cyrillic.subject]);
    });

    it('gives a resend of the same delivery the same Message-ID', async () => {
      smtp.messages.length = 0;
      const sent = message();
      await email.send(sent);
      await email.send(sent);
      expect(smtp.messages.map((m) => m.headers.get('message-id'))).to.deep.equal([`<${sent.id}@shop.test>`, `<${sent.id}@shop.test>`]);
    });

    it('cannot be made to add headers or recipients through CR/LF in the merchant name or the subject', async () => {
      smtp.messages.length = 0;
      await email.send(
        message({
          merchant: { id: 'mer_test', name: 'Acme\r\nBcc: evil@attacker.test\r\nX-Injected: name', brandColor: '#000000' },
          subject: 'Hello\r\nBcc: evil2@attacker.test\nX-Injected: subject',
        }),
      );
      const mail = smtp.messages[0];
      expect(mail.envelope.to).to.deep.equal(['john@example.test']);
      expect(mail.headers.names()).not.to.include('bcc');
      expect(mail.headers.names()).not.to.include('x-injected');
      expect(mail.headers.all('subject')).to.deep.equal(['Hello Bcc: evil2@attacker.test X-Injected: subject']);
      expect(mail.headers.all('from')).to.have.length(1);
      expect(mail.headers.get('from')).to.match(/<pay@shop\.test>$/);
    });

    it('refuses a recipient address with CR/LF without contacting the server', async () => {
      smtp.messages.length = 0;
      const err = await providerFailure(email.send(message({ to: 'john@example.test\r\nBcc: evil@attacker.test' })));
      expect(err.retryable).to.equal(false);
      expect(smtp.messages).to.have.length(0);
    });

    it('retries later when the server answers 421 on connect', async () => {
      // The server restarts, closing the pooled connection: the next message opens a new one.
      await smtp.down();
      await smtp.up();
      smtp.fail('connect', 421, 'Too many connections, try again later', 1);
      const err = await providerFailure(email.send(message()));
      expect(err.retryable).to.equal(true);
      expect(err.message).to.include('421');
    });

    it('retries later when the server answers 451 to the recipient', async () => {
      smtp.fail('rcpt', 451, 'Greylisted, try again later', 1);
      const err = await providerFailure(email.send(message()));
      expect(err.retryable).to.equal(true);
      expect(err.code).to.equal('smtp_temporary');
      expect(err.message).to.include('451 Greylisted');
    });

    it('fails for good when the server answers 550 for the recipient, saying why', async () => {
      smtp.rejectRecipient('nobody@example.test');
      const err = await providerFailure(email.send(message({ to: 'nobody@example.test' })));
      expect(err.retryable).to.equal(false);
      expect(err.code).to.equal('smtp_rejected');
      expect(err.message).to.equal('SMTP server refused the recipient: 550 No such user');
    });

    it('fails for good when the server rejects the message with 554', async () => {
      smtp.fail('data', 554, 'Message rejected as spam', 1);
      const err = await providerFailure(email.send(message()));
      expect(err.retryable).to.equal(false);
      expect(err.message).to.include('554 Message rejected as spam');
    });

    it('retries while the SMTP server is down and delivers once it is back', async () => {
      smtp.messages.length = 0;
      const sent = message();
      await smtp.down();
      try {
        const err = await providerFailure(email.send(sent));
        expect(err.retryable).to.equal(true);
        expect(err.code).to.equal('smtp_unreachable');
        expect(err.message).to.include('ECONNREFUSED');
      } finally {
        await smtp.up();
      }
      await email.send(sent);
      expect(smtp.messages).to.have.length(1);
      expect(smtp.messages[0].headers.get('message-id')).to.equal(`<${sent.id}@shop.test>`);
    });
  });

  describe('with credentials in SMTP_URL and no MAIL_FROM', () => {
    let smtp: TestSmtp;
    let env: TestEnv;
    before(async () => {
      smtp = await startSmtp({ auth: { user: 'mailer', pass: 's3cret:pass' } });
      env = await build(target, { env: { SMTP_URL: smtp.url } });
    });
    after(async () => {
      await env?.close();
      await smtp?.close();
    });

    it('logs in and sends from paylink@<the host of BASE_URL>', async () => {
      const sent = message();
      const result = await env.rt.registries.channels.get('email')!.send(sent);
      expect(result.providerMessageId).to.equal(`<${sent.id}@pay.test>`);
      expect(smtp.messages[0].envelope.from).to.equal('paylink@pay.test');
      expect(smtp.messages[0].headers.get('from')).to.equal('Acme Fitness <paylink@pay.test>');
    });

    it('fails for good when the server refuses the login', async () => {
      const wrong = await startSmtp({ auth: { user: 'mailer', pass: 'other' } });
      const other = await build(target, { env: { SMTP_URL: wrong.url.replace('other', 'wrong') } });
      try {
        const err = await providerFailure(other.rt.registries.channels.get('email')!.send(message()));
        expect(err.retryable).to.equal(false);
        expect(err.message).to.match(/^SMTP server refused the login: 535/);
        expect(wrong.messages).to.have.length(0);
      } finally {
        await other.close();
        await wrong.close();
      }
    });
  });

  describe('without SMTP_URL', () => {
    let env: TestEnv;
    before(async () => {
      env = await build(target);
    });
    after(() => env?.close());

    it('registers nothing, so channel-outbox keeps email', () => {
      expect(env.rt.registries.channels.ownerOf('email')).to.equal('channel-outbox');
      expect(env.rt.plugins.list().find((p) => p.id === 'channel-email')).to.deep.include({ status: 'active' });
    });
  });
});
