import { expect } from 'chai';
import crypto from 'node:crypto';
import net from 'node:net';
import { TARGETS } from './support/targets.ts';
import { build, type TestEnv } from './support/harness.ts';
import { startFakeVonage, type FakeVonage, type VonageApi } from './support/fake-vonage.ts';
import type { Channel, OutgoingMessage } from '../src/plugin-api.ts';
import { providerFailure } from './support/channels.ts';

// The channel keeps no data: one target (embedded SQLite) is enough to prove the host wiring.
const target = TARGETS[0];
const KEY = 'abcd1234';
const SECRET = 'Secret5678';

let sequence = 0;
function message(fields: Partial<OutgoingMessage> = {}): OutgoingMessage {
  sequence += 1;
  return {
    id: `dlv_vonage_${sequence}`,
    merchant: { id: 'mer_test', name: 'Acme Fitness & Yoga Studio', brandColor: '#0a7cff' },
    to: '+31612345678',
    text: 'Hi John, your Acme Fitness link: http://pay.test/acme/yoga',
    kind: 'initial',
    linkUrl: null,
    ...fields,
  };
}

const vonageEnv = (fake: FakeVonage, extra: Record<string, string> = {}) => ({
  VONAGE_API_KEY: KEY,
  VONAGE_API_SECRET: SECRET,
  VONAGE_REST_HOST: fake.url,
  VONAGE_API_HOST: fake.url,
  ...extra,
});

async function closedPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

describe('channel-vonage', () => {
  describe('with VONAGE_API_KEY, VONAGE_API_SECRET and VONAGE_WHATSAPP_FROM', () => {
    let fake: FakeVonage;
    let env: TestEnv;
    let sms: Channel;
    let whatsapp: Channel;
    before(async () => {
      fake = await startFakeVonage({ apiKey: KEY, apiSecret: SECRET });
      env = await build(target, { env: vonageEnv(fake, { VONAGE_WHATSAPP_FROM: '+447700900000' }) });
      sms = env.rt.registries.channels.get('sms')!;
      whatsapp = env.rt.registries.channels.get('whatsapp')!;
    });
    after(async () => {
      await env?.close();
      await fake?.close();
    });
    beforeEach(() => fake.reset());

    it('takes over sms and whatsapp from channel-outbox, and leaves email to it', () => {
      expect(env.rt.registries.channels.ownerOf('sms')).to.equal('channel-vonage');
      expect(env.rt.registries.channels.ownerOf('whatsapp')).to.equal('channel-vonage');
      expect(env.rt.registries.channels.ownerOf('email')).to.equal('channel-outbox');
      expect([sms.address, whatsapp.address]).to.deep.equal(['phone', 'phone']);
    });

    it('sends an SMS from the business name cut to 11 characters, to the number without "+", with the delivery id as client-ref', async () => {
      const sent = message();
      const result = await sms.send(sent);

      expect(fake.requests).to.have.length(1);
      const req = fake.requests[0];
      expect(req.api).to.equal('sms');
      expect(req.auth).to.deep.equal({ kind: 'basic', user: KEY, pass: SECRET });
      expect(req.body).to.deep.include({ to: '31612345678', from: 'Acme Fitnes', text: sent.text, type: 'text', 'client-ref': sent.id });
      expect(result.providerMessageId).to.match(/^SMS\d{13}$/);
    });

    it('makes an alphanumeric sender id of any business name, falling back to "Paylink"', async () => {
      const names = ['Café Zoë', '  Ünïcödé  Bäckerei GmbH', 'Tom’s Bikes & Co.', '★★★', 'Shop'];
      for (const name of names) await sms.send(message({ merchant: { id: 'mer_test', name, brandColor: '#000000' } }));
      expect(fake.requests.map((r) => r.body.from)).to.deep.equal(['Cafe Zoe', 'Unicode Bac', 'Toms Bikes', 'Paylink', 'Shop']);
    });

    it('sends text outside the GSM alphabet as a unicode SMS', async () => {
      await sms.send(message({ text: 'Привет John, 支付: http://pay.test/acme/yoga' }));
      await sms.send(message({ text: 'Hi Jürgen, €12.50 [Acme] please: http://pay.test/acme/12.50' }));
      expect(fake.requests.map((r) => r.body.type)).to.deep.equal(['unicode', 'text']);
    });

    it('sends a WhatsApp text through the Messages API from the business number', async () => {
      const sent = message();
      const result = await whatsapp.send(sent);

      expect(fake.requests).to.have.length(1);
      const req = fake.requests[0];
      expect(req.api).to.equal('messages');
      expect(req.auth).to.deep.equal({ kind: 'basic', user: KEY, pass: SECRET });
      expect(req.body).to.deep.equal({ channel: 'whatsapp', message_type: 'text', to: '31612345678', from: '447700900000', text: sent.text, client_ref: sent.id });
      expect(result.providerMessageId).to.match(/^aaaaaaaa-bbbb-4ccc-8ddd-\d{12}$/);
    });

    it('refuses a number that is not in international format without calling Vonage', async () => {
      for (const to of ['0612345678', '+31 6 1234', 'john@example.test']) {
        const err = await providerFailure(sms.send(message({ to })));
        expect(err.retryable).to.equal(false);
        expect(err.code).to.equal('invalid_recipient');
      }
      expect(fake.requests).to.have.length(0);
    });

    const httpCases: { api: VonageApi; status: number; retryable: boolean; code: string }[] = [
      { api: 'sms', status: 500, retryable: true, code: 'vonage_unavailable' },
      { api: 'sms', status: 503, retryable: true, code: 'vonage_unavailable' },
      { api: 'sms', status: 429, retryable: true, code: 'vonage_unavailable' },
      { api: 'sms', status: 401, retryable: false, code: 'vonage_rejected' },
      { api: 'messages', status: 500, retryable: true, code: 'vonage_unavailable' },
      { api: 'messages', status: 429, retryable: true, code: 'vonage_unavailable' },
      { api: 'messages', status: 400, retryable: false, code: 'vonage_rejected' },
      { api: 'messages', status: 401, retryable: false, code: 'vonage_rejected' },
      { api: 'messages', status: 403, retryable: false, code: 'vonage_rejected' },
      { api: 'messages', status: 422, retryable: false, code: 'vonage_rejected' },
    ];
    for (const c of httpCases) {
      it(`${c.retryable ? 'retries' : 'fails for good'} when the ${c.api === 'sms' ? 'SMS' : 'Messages'} API answers HTTP ${c.status}`, async () => {
        fake.failHttp(c.api, c.status);
        const channel = c.api === 'sms' ? sms : whatsapp;
        const err = await providerFailure(channel.send(message()));
        expect(err.retryable).to.equal(c.retryable);
        expect(err.code).to.equal(c.code);
        expect(err.message).to.include(`(HTTP ${c.status})`);
        expect(fake.requests).to.have.length(1);
      });
    }

    it("explains a rejection with Vonage's own title and detail", async () => {
      fake.failHttp('messages', 422, { title: 'Invalid sender', detail: 'The `from` parameter is not a WhatsApp business number.' });
      const err = await providerFailure(whatsapp.send(message()));
      expect(err.message).to.equal('Vonage rejected the message: Invalid sender: The `from` parameter is not a WhatsApp business number. (HTTP 422)');
    });

    it('retries when the SMS API answers status 1 (throttled)', async () => {
      fake.failSms('1', 'Throughput Rate Exceeded - please wait [ 1 ] and retry');
      const err = await providerFailure(sms.send(message()));
      expect(err.retryable).to.equal(true);
      expect(err.message).to.include('Throughput Rate Exceeded');
    });

    it('fails for good when the SMS API rejects the message, saying why', async () => {
      fake.failSms('15', 'Illegal Sender Address - rejected');
      const err = await providerFailure(sms.send(message()));
      expect(err.retryable).to.equal(false);
      expect(err.code).to.equal('vonage_rejected');
      expect(err.message).to.equal('Vonage rejected the message: Illegal Sender Address - rejected');
    });
  });

  describe('with wrong credentials', () => {
    let fake: FakeVonage;
    let env: TestEnv;
    before(async () => {
      fake = await startFakeVonage({ apiKey: KEY, apiSecret: 'the-real-secret' });
      env = await build(target, { env: vonageEnv(fake, { VONAGE_WHATSAPP_FROM: '447700900000' }) });
    });
    after(async () => {
      await env?.close();
      await fake?.close();
    });

    it('fails SMS for good with "Bad Credentials" (status 4)', async () => {
      const err = await providerFailure(env.rt.registries.channels.get('sms')!.send(message()));
      expect(err.retryable).to.equal(false);
      expect(err.message).to.equal('Vonage rejected the message: Bad Credentials');
    });

    it('fails WhatsApp for good with HTTP 401', async () => {
      const err = await providerFailure(env.rt.registries.channels.get('whatsapp')!.send(message()));
      expect(err.retryable).to.equal(false);
      expect(err.message).to.include('Unauthorized').and.include('(HTTP 401)');
    });
  });

  describe('when Vonage cannot be reached', () => {
    let env: TestEnv;
    before(async () => {
      const url = `http://127.0.0.1:${await closedPort()}`;
      env = await build(target, { env: { VONAGE_API_KEY: KEY, VONAGE_API_SECRET: SECRET, VONAGE_REST_HOST: url, VONAGE_API_HOST: url, VONAGE_WHATSAPP_FROM: '447700900000' } });
    });
    after(() => env?.close());

    it('retries SMS and WhatsApp later', async () => {
      for (const id of ['sms', 'whatsapp']) {
        const err = await providerFailure(env.rt.registries.channels.get(id)!.send(message()));
        expect(err.retryable).to.equal(true);
        expect(err.code).to.equal('vonage_unreachable');
        expect(err.message).to.include('ECONNREFUSED');
      }
    });
  });

  describe('with an application id and private key', () => {
    let fake: FakeVonage;
    let env: TestEnv;
    before(async () => {
      fake = await startFakeVonage({ apiKey: KEY, apiSecret: SECRET, applicationId: 'app-1234' });
      const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      // One env line, newlines escaped, as a PEM usually arrives in a .env file.
      const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString().replace(/\n/g, '\\n');
      env = await build(target, { env: vonageEnv(fake, { VONAGE_APPLICATION_ID: 'app-1234', VONAGE_PRIVATE_KEY: pem, VONAGE_WHATSAPP_FROM: '447700900000' }) });
    });
    after(async () => {
      await env?.close();
      await fake?.close();
    });

    it('signs Messages API requests with a JWT for the application, and still sends SMS with key and secret', async () => {
      await env.rt.registries.channels.get('whatsapp')!.send(message());
      await env.rt.registries.channels.get('sms')!.send(message());
      const [wa, text] = fake.requests;
      expect(wa.auth).to.have.property('kind', 'jwt');
      expect((wa.auth as { claims: Record<string, unknown> }).claims).to.include({ application_id: 'app-1234' });
      expect(text.auth).to.deep.equal({ kind: 'basic', user: KEY, pass: SECRET });
    });
  });

  describe('configured through PAYLINK_PLUGIN_CHANNEL_VONAGE', () => {
    let fake: FakeVonage;
    let env: TestEnv;
    before(async () => {
      fake = await startFakeVonage({ apiKey: 'json-key', apiSecret: 'json-secret' });
      const settings = { apiKey: 'json-key', apiSecret: 'json-secret', restHost: fake.url, apiHost: fake.url };
      env = await build(target, { env: { PAYLINK_PLUGIN_CHANNEL_VONAGE: JSON.stringify(settings) } });
    });
    after(async () => {
      await env?.close();
      await fake?.close();
    });

    it('sends SMS with those settings and, without a WhatsApp number, leaves whatsapp to channel-outbox', async () => {
      expect(env.rt.registries.channels.ownerOf('sms')).to.equal('channel-vonage');
      expect(env.rt.registries.channels.ownerOf('whatsapp')).to.equal('channel-outbox');
      await env.rt.registries.channels.get('sms')!.send(message());
      expect(fake.requests[0].auth).to.deep.equal({ kind: 'basic', user: 'json-key', pass: 'json-secret' });
    });
  });

  it('refuses to boot with an API key but no secret, naming the setting', async () => {
    let error: Error | null = null;
    try {
      const env = await build(target, { env: { PAYLINK_PLUGIN_CHANNEL_VONAGE: JSON.stringify({ apiKey: 'k', whatsappFrom: 'not-a-number' }) } });
      await env.close();
    } catch (err) {
      error = err as Error;
    }
    expect(error).to.include({ code: 'plugin_load_failed' });
    expect(error!.message).to.include('PAYLINK_PLUGIN_CHANNEL_VONAGE').and.include('apiSecret').and.include('whatsappFrom');
  });

  describe('without VONAGE_API_KEY', () => {
    let env: TestEnv;
    before(async () => {
      env = await build(target);
    });
    after(() => env?.close());

    it('registers nothing, so channel-outbox keeps sms and whatsapp', () => {
      expect(env.rt.registries.channels.ownerOf('sms')).to.equal('channel-outbox');
      expect(env.rt.registries.channels.ownerOf('whatsapp')).to.equal('channel-outbox');
      expect(env.rt.plugins.list().find((p) => p.id === 'channel-vonage')).to.deep.include({ status: 'active' });
    });
  });
});
