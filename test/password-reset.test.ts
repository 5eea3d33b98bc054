import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { csrfFrom, fieldError, signUp, useEnv, type Account, type TestEnv } from './support/harness.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';

const NEW_PASSWORD = 'a brand new passphrase';

/** Asks for a reset link with a fresh agent; the response as the visitor sees it. */
async function askReset(env: TestEnv, email: string) {
  const agent = supertest.agent(env.app);
  const page = await agent.get('/password/forgot').expect(200);
  return agent.post('/password/forgot').type('form').send({ _csrf: csrfFrom(page.text), email });
}

/** The page without what differs per session (the CSRF token, the CSP nonce). */
const sameParts = (html: string) => html.replace(/name="_csrf" value="[^"]+"/g, '').replace(/nonce="[^"]+"/g, '');

async function logIn(env: TestEnv, email: string, password: string) {
  const agent = supertest.agent(env.app);
  const page = await agent.get('/login');
  const res = await agent.post('/login').type('form').send({ _csrf: csrfFrom(page.text), email, password });
  return { agent, status: res.status };
}

forEachTarget('password reset and sign-in changes', (target) => {
  let smtp: TestSmtp;
  before(async () => {
    smtp = await startSmtp();
  });
  after(async () => {
    await smtp?.close();
  });
  const env = useEnv(target, () => ({
    env: { SMTP_URL: smtp.url, MAIL_FROM: 'pay@paylink.test' },
    resetLimits: { perIp: { points: 10_000, durationSec: 3600 }, perEmail: { points: 1_000, durationSec: 3600 } },
    // Tests here check old and losing passwords on purpose: the login limiter is not what they test.
    loginLimits: { perIpAccount: { points: 1_000, durationSec: 900 }, perAccount: { points: 1_000, durationSec: 900 }, perIp: { points: 10_000, durationSec: 3600 } },
  }));

  /** The reset links mailed to `to`, oldest first (after the notice jobs ran). */
  const linksTo = async (to: string) => {
    await env.rt.jobs.drain();
    return smtp.messages
      .filter((m) => m.envelope.to.includes(to))
      .map((m) => /http:\/\/pay\.test\/password\/reset\/([A-Za-z0-9_-]+)/.exec(m.text ?? '')?.[1])
      .filter((t): t is string => Boolean(t));
  };
  const newLink = async (acct: Account) => {
    const before = (await linksTo(acct.email)).length;
    expect((await askReset(env, acct.email)).status).to.equal(200);
    const all = await linksTo(acct.email);
    expect(all).to.have.length(before + 1);
    return all[all.length - 1];
  };
  const submit = async (agent: ReturnType<typeof supertest.agent>, token: string, password = NEW_PASSWORD) => {
    const page = await agent.get(`/password/reset/${token}`);
    const csrf = csrfFrom(page.status === 200 ? page.text : (await agent.get('/login')).text);
    return agent.post(`/password/reset/${token}`).type('form').send({ _csrf: csrf, password });
  };

  it('answers the same for a known and an unknown address, and mails only the known one', async () => {
    const acct = await signUp(env.app);
    const known = await askReset(env, acct.email.toUpperCase());
    const unknown = await askReset(env, 'nobody-here@example.test');
    expect(known.status).to.equal(200);
    expect(unknown.status).to.equal(200);
    expect(known.text).to.include('If an account exists for that address, we sent a link');
    expect(sameParts(unknown.text)).to.equal(sameParts(known.text.replace(acct.email.toUpperCase(), 'nobody-here@example.test')));
    await env.rt.jobs.drain();
    expect(smtp.messages.filter((m) => m.envelope.to.includes('nobody-here@example.test'))).to.have.length(0);
    const mail = smtp.messages.find((m) => m.envelope.to.includes(acct.email))!;
    expect(mail.headers.get('subject')).to.equal('Reset your Paylink password');
    const token = (await linksTo(acct.email))[0];
    expect(token).to.have.length(43);
    // Only a keyed hash is stored.
    expect(JSON.stringify(await env.rt.db('account_tokens'))).not.to.include(token);
    // The login page links here.
    expect((await supertest(env.app).get('/login')).text).to.include('href="/password/forgot"');
  });

  it('sets a new password, signs this browser in and every other session out; the link works once', async () => {
    const acct = await signUp(env.app);
    const other = await logIn(env, acct.email, acct.password);
    expect(other.status).to.equal(303);
    await other.agent.get('/app').expect(200);
    const token = await newLink(acct);

    const visitor = supertest.agent(env.app);
    const form = await visitor.get(`/password/reset/${token}`).expect(200);
    expect(form.headers['cache-control']).to.include('no-store');
    expect(form.headers['referrer-policy']).to.equal('no-referrer');
    // Same rules as sign-up: a short password is refused by field, and the link stays usable.
    const short = await visitor.post(`/password/reset/${token}`).type('form').send({ _csrf: csrfFrom(form.text), password: 'short' });
    expect(short.status).to.equal(422);
    expect(fieldError(short.text, 'password')).to.equal('Use at least 10 characters.');
    const ok = await visitor.post(`/password/reset/${token}`).type('form').send({ _csrf: csrfFrom(short.text), password: NEW_PASSWORD });
    expect(ok.status).to.equal(303);
    expect(ok.headers.location).to.equal('/app');
    await visitor.get('/app').expect(200);

    // The sessions from before (the sign-up's and another login's) are gone.
    expect((await other.agent.get('/app')).status).to.equal(303);
    expect((await acct.agent.get('/app')).status).to.equal(303);
    expect((await logIn(env, acct.email, acct.password)).status).to.equal(401);
    expect((await logIn(env, acct.email, NEW_PASSWORD)).status).to.equal(303);

    // Used: a clear page offering a new link.
    const again = await submit(supertest.agent(env.app), token, 'yet another passphrase');
    expect(again.status).to.equal(410);
    expect(again.text).to.include('This link was already used');
    expect(again.text).to.include('href="/password/forgot?expired=1"');
    expect((await supertest(env.app).get(`/password/reset/${token}`)).status).to.equal(410);
    expect((await logIn(env, acct.email, NEW_PASSWORD)).status).to.equal(303);
  });

  it('10 parallel submits of one link: exactly one sets the password', async () => {
    const acct = await signUp(env.app);
    const token = await newLink(acct);
    const agents = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const agent = supertest.agent(env.app);
        const page = await agent.get(`/password/reset/${token}`).expect(200);
        return { agent, csrf: csrfFrom(page.text), password: `parallel passphrase ${i}` };
      }),
    );
    const results = await Promise.all(agents.map((a) => a.agent.post(`/password/reset/${token}`).type('form').send({ _csrf: a.csrf, password: a.password })));
    const winners = results.map((r, i) => ({ status: r.status, i })).filter((r) => r.status === 303);
    expect(winners, results.map((r) => r.status).join(',')).to.have.length(1);
    expect(results.filter((r) => r.status === 410)).to.have.length(9);
    const won = agents[winners[0].i];
    expect((await logIn(env, acct.email, won.password)).status).to.equal(303);
    for (const [i, a] of agents.entries()) if (i !== winners[0].i) expect((await logIn(env, acct.email, a.password)).status).to.equal(401);
  });

  it('refuses an expired link after 30 minutes on the clock, and an altered one', async () => {
    const acct = await signUp(env.app);
    const token = await newLink(acct);
    const altered = token.slice(0, 10) + (token[10] === 'x' ? 'y' : 'x') + token.slice(11);
    const bad = await supertest(env.app).get(`/password/reset/${altered}`);
    expect(bad.status).to.equal(410);
    expect(bad.text).to.include('This link is not valid');
    expect((await submit(supertest.agent(env.app), altered)).status).to.equal(410);
    expect((await supertest(env.app).get(`/password/reset/${token}-`)).status).to.equal(410);

    env.clock.advance(29 * 60_000);
    expect((await supertest(env.app).get(`/password/reset/${token}`)).status).to.equal(200);
    env.clock.advance(60_000);
    const late = await submit(supertest.agent(env.app), token);
    expect(late.status).to.equal(410);
    expect(late.text).to.include('This link has expired');
    expect(late.text).to.include('Send me a new link');
    expect((await logIn(env, acct.email, acct.password)).status).to.equal(303);
  });

  describe('Settings → Sign-in', () => {
    it('changes the password behind the current one (422 by field), signing other sessions out', async () => {
      const acct = await signUp(env.app);
      const other = await logIn(env, acct.email, acct.password);
      // Signed in, "Forgot your password?" leads to changing it.
      expect((await acct.agent.get('/password/forgot')).headers.location).to.equal('/app/settings/password');
      expect((await acct.agent.get('/app/settings')).text).to.include('href="/app/settings/password"');
      const page = await acct.agent.get('/app/settings/password').expect(200);
      const wrong = await acct.agent.post('/app/settings/password').type('form').send({ _csrf: csrfFrom(page.text), current_password: 'not my password', password: 'short' });
      expect(wrong.status).to.equal(422);
      expect(fieldError(wrong.text, 'current_password')).to.equal('That is not your current password.');
      expect(fieldError(wrong.text, 'password')).to.equal('Use at least 10 characters.');
      const none = await acct.agent.post('/app/settings/password').type('form').send({ _csrf: csrfFrom(page.text), password: NEW_PASSWORD });
      expect(none.status).to.equal(422);
      expect(fieldError(none.text, 'current_password')).to.equal('Enter your current password.');
      expect((await logIn(env, acct.email, acct.password)).status).to.equal(303);

      const ok = await acct.agent.post('/app/settings/password').type('form').send({ _csrf: csrfFrom(page.text), current_password: acct.password, password: NEW_PASSWORD });
      expect(ok.status).to.equal(303);
      const settings = await acct.agent.get('/app/settings').expect(200);
      expect(settings.text).to.include('Your password has been changed');
      expect((await other.agent.get('/app')).status).to.equal(303);
      expect((await logIn(env, acct.email, acct.password)).status).to.equal(401);
      expect((await logIn(env, acct.email, NEW_PASSWORD)).status).to.equal(303);
    });

    it('changes the email behind the current password (unique, 422 by field), signing other sessions out', async () => {
      const acct = await signUp(env.app);
      const taken = await signUp(env.app);
      const other = await logIn(env, acct.email, acct.password);
      const page = await acct.agent.get('/app/settings/email').expect(200);
      const post = (fields: Record<string, string>) => acct.agent.post('/app/settings/email').type('form').send({ _csrf: csrfFrom(page.text), ...fields });

      const wrong = await post({ email: 'new-address@example.test', current_password: 'not my password' });
      expect(wrong.status).to.equal(422);
      expect(fieldError(wrong.text, 'current_password')).to.equal('That is not your current password.');
      const dup = await post({ email: taken.email.toUpperCase(), current_password: acct.password });
      expect(dup.status).to.equal(422);
      expect(fieldError(dup.text, 'email')).to.equal('Another account already uses this email address.');
      const bad = await post({ email: 'not an email', current_password: acct.password });
      expect(bad.status).to.equal(422);
      expect(fieldError(bad.text, 'email')).to.match(/valid email/);
      await other.agent.get('/app').expect(200);

      const newEmail = `moved-${acct.handle}@example.test`;
      const ok = await post({ email: newEmail, current_password: acct.password });
      expect(ok.status).to.equal(303);
      await acct.agent.get('/app').expect(200);
      expect((await other.agent.get('/app')).status).to.equal(303);
      expect((await logIn(env, acct.email, acct.password)).status).to.equal(401);
      expect((await logIn(env, newEmail, acct.password)).status).to.equal(303);
      // Reset links now go to the new address.
      await askReset(env, newEmail);
      expect(await linksTo(newEmail)).to.have.length(1);
    });
  });
});

forEachTarget('password reset limits', (target) => {
  const env = useEnv(target, { resetLimits: { perIp: { points: 5, durationSec: 3600 }, perEmail: { points: 3, durationSec: 3600 } } });

  it('limits requests per email (known or not, the same 429) and per IP', async () => {
    const acct = await signUp(env.app);
    for (let i = 0; i < 3; i++) expect((await askReset(env, acct.email)).status).to.equal(200);
    const over = await askReset(env, acct.email);
    expect(over.status).to.equal(429);
    expect(Number(over.headers['retry-after'])).to.be.greaterThan(0);
    expect(over.text).to.include('Too many reset links were asked for this email address');
    expect(await env.rt.db('account_tokens').where({ purpose: 'password_reset' }).count({ n: '*' }).then((r) => Number((r as { n: number }[])[0].n))).to.equal(3);
    // Two more addresses use the IP's last points; the next is refused for the network.
    expect((await askReset(env, 'one@example.test')).status).to.equal(200);
    expect((await askReset(env, 'two@example.test')).status).to.equal(200);
    const ip = await askReset(env, 'three@example.test');
    expect(ip.status).to.equal(429);
    expect(ip.text).to.include('Too many password reset requests from your network');
    // A new hour, new points.
    env.clock.advance(3_600_000);
  });
});
