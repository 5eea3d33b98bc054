/**
 * "Sent" only when a message left the building (issue 14 item 4). With no email server or SMS
 * provider configured, channel-outbox keeps every message: the notice after a send, each message's
 * status, a payment request's history, the API and the log say "Kept in the Outbox (no email server
 * configured)" and link to how to send for real. With a real channel (a loopback SMTP server) the
 * email reads "Sent" as before, next to an SMS that was only kept.
 */
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type Account, type TestEnv } from './support/harness.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';
import { createLogger } from '../src/core/log.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Customer } from '../src/features/customers/service.ts';

const PANEL = { 'HX-Request': 'true', 'HX-Target': 'link-send' };
const HELP = 'href="/app/p/channel-outbox#configure"';
const text = (html: string) => html.replace(/<[^>]+>/g, ' ').replace(/&#39;|&rsquo;/g, '’').replace(/\s+/g, ' ');

function form(fields: Record<string, string | string[]>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const one of Array.isArray(v) ? v : [v]) p.append(k, one);
  return p.toString();
}

/** The delivery card's rows as "channel | status badge". */
function statuses(html: string): string[] {
  const start = html.indexOf('deliveries-table');
  if (start < 0) return [];
  const table = html.slice(start, html.indexOf('</table>', start));
  return [...table.matchAll(/<tr id="delivery-[^"]+">([\s\S]*?)<\/tr>/g)].map((m) => {
    const channel = /data-label="Channel"[^>]*>([\s\S]*?)<\/td>/.exec(m[1])![1].replace(/<[^>]+>/g, '').trim();
    const badge = /data-label="Status"[\s\S]*?<span class="badge badge-\w+">([^<]*)<\/span>/.exec(m[1])![1];
    return `${channel} | ${badge}`;
  }).sort();
}

forEachTarget('messages kept in the Outbox are not “Sent”', (target) => {
  for (const setup of ['no channel configured', 'an SMTP server for email'] as const) {
    describe(setup, () => {
      const smtpReal = setup === 'an SMTP server for email';
      let env: TestEnv;
      let smtp: TestSmtp | null = null;
      let acct: Account;
      let shop: Merchant;
      let jane: Customer;
      let key: string;
      const logged: string[] = [];

      before(async () => {
        if (smtpReal) smtp = await startSmtp();
        env = await build(target, { env: smtp ? { SMTP_URL: smtp.url, MAIL_FROM: 'pay@shop.test' } : {}, log: createLogger('info', (line) => void logged.push(line)) });
        acct = await signUp(env.app);
        shop = (await env.rt.services.merchants.getByHandle(acct.handle))!;
        jane = await env.rt.services.customers.create(shop.key, { name: 'Jane Doe', email: 'jane@example.test', phone: '+31 6 12345678' });
        key = (await env.rt.services.apiKeys.create(shop, { name: 'kept tests' })).secret;
      });
      after(async () => {
        await env?.close();
        await smtp?.close();
      });

      it('says so after sending a link by email and SMS, on each message, in the API and in the log', async () => {
        const link = await env.rt.services.links.create(shop, { type: 'amount', name: 'Class pass', amount: 3900 });
        const res = await acct.agent.post(`/app/links/${link.id}/send`).set(PANEL).type('form').send(form({ _csrf: acct.csrf, customer_ids: jane.id, channels: ['email', 'sms'] })).expect(200);
        const notice = text(/<p class="flash[^"]*" role="status">[\s\S]*?<\/p>/.exec(res.text)![0]);
        if (smtpReal) {
          expect(notice).to.include('Sent to Jane Doe by Email. SMS: kept in the Outbox (no SMS provider configured).');
        } else {
          expect(notice).to.include('Kept in the Outbox (no email server configured, no SMS provider configured): nothing went to Jane Doe.');
          expect(notice).not.to.match(/\bSent\b/);
        }
        expect(res.text).to.include(HELP);

        await env.rt.jobs.drain();
        const page = (await acct.agent.get(`/app/links/${link.id}`).expect(200)).text;
        expect(statuses(page)).to.deep.equal(smtpReal ? ['Email | Sent', 'SMS | Kept in the Outbox'] : ['Email | Kept in the Outbox', 'SMS | Kept in the Outbox']);
        expect(text(page)).to.include('Not delivered: no SMS provider configured. How to send for real');
        expect(text(page).includes('Not delivered: no email server configured.')).to.equal(!smtpReal);

        const api = await supertest(env.app).get(`/api/v1/links/${link.id}/deliveries`).set('Authorization', `Bearer ${key}`).expect(200);
        const byChannel = Object.fromEntries((api.body.data as { channel: string; status: string; kept: boolean }[]).map((d) => [d.channel, [d.status, d.kept]]));
        expect(byChannel).to.deep.equal({ email: ['sent', !smtpReal], sms: ['sent', true] });

        const kept = logged.filter((l) => /message kept in the Outbox, not delivered/.test(l));
        const sent = logged.filter((l) => /\bmessage sent\b/.test(l));
        expect(kept.length).to.equal(smtpReal ? 1 : 2);
        expect(sent.length).to.equal(smtpReal ? 1 : 0);
        if (smtp) expect(smtp.messages.map((m) => m.envelope.to)).to.deep.include(['jane@example.test']);
      });

      it('says so when a payment request is created with a message, and in its history', async () => {
        const res = await acct.agent
          .post('/app/requests')
          .type('form')
          .send(form({ _csrf: acct.csrf, amount: '45.50', currency: 'EUR', description: 'Invoice 7', reference: '', customer_name: 'Jane Doe', customer_email: 'jane@example.test', customer_phone: '', expires_days: '7', max_uses: '1', reminder_frequency: '', reminder_max: '3', notify_before: '', channels: 'email' }))
          .expect(303);
        const page = await acct.agent.get(res.headers.location).expect(200);
        const flash = text(/<div id="flash"[\s\S]*?<\/div>/.exec(page.text)![0]);
        if (smtpReal) {
          expect(flash).to.include('It is on its way by Email').and.not.include('Outbox');
        } else {
          expect(flash).to.include('Email: kept in the Outbox (no email server configured), so nothing went to the customer.').and.not.include('on its way');
          expect(page.text).to.include(HELP);
        }
        await env.rt.jobs.drain();
        const after = text((await acct.agent.get(res.headers.location).expect(200)).text);
        if (smtpReal) expect(after).to.match(/Request by Email to jane@example\.test — sent\b/);
        else expect(after).to.include('Request by Email to jane@example.test — kept in the Outbox, not delivered');
      });

      it('says so after Text-to-Pay by SMS', async () => {
        const res = await acct.agent.post(`/app/customers/${jane.id}/text-to-pay`).type('form').send({ _csrf: acct.csrf, amount: '12.50', description: '', channel: 'sms' }).expect(303);
        const page = await acct.agent.get(res.headers.location).expect(200);
        const flash = text(/<div id="flash"[\s\S]*?<\/div>/.exec(page.text)![0]);
        expect(flash).to.include('Payment request for €12.50 kept in the Outbox (no SMS provider configured): nothing went to +31 6 12345678.');
        expect(page.text).to.include(HELP);
      });
    });
  }

  it('explains on the Outbox page how to send for real', async () => {
    const env = await build(target);
    try {
      const acct = await signUp(env.app);
      const page = await acct.agent.get('/app/p/channel-outbox').expect(200);
      expect(page.text).to.include('id="configure"').and.include('SMTP_URL').and.include('VONAGE_API_KEY');
    } finally {
      await env.close();
    }
  });
});
