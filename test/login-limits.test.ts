// Login throttling under real concurrency (issue 14 item 12): the limiter takes a point before the
// password is checked, so 40 parallel wrong passwords reach the check at most `limit` times, from one
// IP and (per account) from many; unknown emails get the same answers as known ones.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { csrfFrom, signUp, useEnv, type TestEnv } from './support/harness.ts';
import { createLimiter, type Limiter } from '../src/core/rate-limit.ts';
import { hashPassword, verifyPassword } from '../src/core/passwords.ts';
import { randomToken } from '../src/core/ids.ts';
import { createLoginLimiter } from '../src/features/accounts/index.ts';

const PARALLEL = 40;
const LIMITS = { perIpAccount: { points: 5, durationSec: 900 }, perAccount: { points: 10, durationSec: 900 }, perIp: { points: 1000, durationSec: 3600 } };

/** A listening server for the app (real sockets, so the 40 requests run side by side). */
async function listen(env: TestEnv): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(env.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A login page's session cookie and CSRF token, to post the form with. */
async function loginForm(url: string): Promise<{ cookie: string; csrf: string }> {
  const res = await fetch(`${url}/login`);
  return { cookie: res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; '), csrf: csrfFrom(await res.text()) };
}

async function postLogin(url: string, form: { cookie: string; csrf: string }, email: string, password: string, from?: string) {
  const res = await fetch(`${url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: form.cookie, ...(from ? { 'x-forwarded-for': from } : {}) },
    body: new URLSearchParams({ _csrf: form.csrf, email, password }).toString(),
  });
  return { status: res.status, text: await res.text(), retryAfter: res.headers.get('retry-after') };
}

const tally = (statuses: number[]) => statuses.reduce<Record<number, number>>((acc, s) => ({ ...acc, [s]: (acc[s] ?? 0) + 1 }), {});
const message = (html: string) => /<p class="error"[^>]*>([^<]+)</.exec(html)?.[1] ?? /role="alert"[^>]*>([^<]+)</.exec(html)?.[1] ?? html.match(/Too many failed attempts[^<]*/)?.[0] ?? '';

forEachTarget('login limits', (target) => {
  // TRUST_PROXY: the test speaks for many client addresses through X-Forwarded-For.
  const env = useEnv(target, { loginLimits: LIMITS, env: { TRUST_PROXY: 'true' } });

  describe('the limiter itself, 40 parallel wrong passwords on one account (real argon2 checks)', () => {
    /** Runs `n` guesses at once, each doing what the login does, and counts the password checks. */
    const race = async (guess: (verify: () => Promise<boolean>) => Promise<unknown>) => {
      const hash = await hashPassword('the right one');
      let checks = 0;
      const verify = async () => {
        checks += 1;
        return verifyPassword(hash, 'a wrong guess');
      };
      await Promise.all(Array.from({ length: PARALLEL }, () => guess(verify).catch(() => null)));
      return checks;
    };

    it('control: reading the count before checking and counting after lets more guesses through than the limit', async () => {
      // The old limiter's way, on the same store (memory, or Redis on [mariadb]).
      const counter: Limiter = createLimiter(env.rt.redis, env.config.redisPrefix, `control-${randomToken(6)}`, LIMITS.perIpAccount);
      const key = `127.0.0.1|${randomToken(6)}@example.test`;
      const checks = await race(async (verify) => {
        const seen = await counter.get(key);
        if (seen && seen.consumedPoints >= LIMITS.perIpAccount.points) return;
        if (!(await verify())) await counter.penalty(key, 1);
      });
      expect(checks).to.be.greaterThan(LIMITS.perIpAccount.points);
    });

    it('taking the point before checking lets at most the limit through', async () => {
      const limiter = createLoginLimiter(env.rt.redis, env.config.redisPrefix, LIMITS);
      const email = `${randomToken(6)}@example.test`;
      const checks = await race(async (verify) => {
        await limiter.attempt('127.0.0.1', email);
        await verify();
      });
      expect(checks).to.be.at.most(LIMITS.perIpAccount.points);
      expect(checks).to.be.greaterThan(0);
    });

    it('across 40 addresses, at most the per-account limit reach the check', async () => {
      const limiter = createLoginLimiter(env.rt.redis, env.config.redisPrefix, LIMITS);
      const email = `${randomToken(6)}@example.test`;
      let n = 0;
      const checks = await race(async (verify) => {
        n += 1;
        await limiter.attempt(`10.0.0.${n}`, email);
        await verify();
      });
      expect(checks).to.be.at.most(LIMITS.perAccount.points);
      expect(checks).to.be.greaterThan(LIMITS.perIpAccount.points);
    });
  });

  describe('the login form', () => {
    let server: Awaited<ReturnType<typeof listen>>;
    before(async () => {
      server = await listen(env);
    });
    after(() => server?.close());

    it('40 parallel wrong passwords from one IP: at most 5 reach the password check, the rest get 429 — and then so does the right password', async () => {
      const acct = await signUp(env.app);
      const form = await loginForm(server.url);
      const results = await Promise.all(Array.from({ length: PARALLEL }, () => postLogin(server.url, form, acct.email, 'wrong password!')));
      const counts = tally(results.map((r) => r.status));
      // A 401 is a password that was checked and refused; a 429 was refused before any check.
      expect(counts[401] ?? 0, JSON.stringify(counts)).to.be.at.most(LIMITS.perIpAccount.points);
      expect((counts[401] ?? 0) + (counts[429] ?? 0), JSON.stringify(counts)).to.equal(PARALLEL);
      const limited = results.find((r) => r.status === 429)!;
      expect(limited.retryAfter).to.match(/^\d+$/);
      expect(limited.text).to.include('Too many failed attempts');
      const right = await postLogin(server.url, form, acct.email, acct.password);
      expect(right.status).to.equal(429);
    });

    it('40 parallel wrong passwords for one account from 40 addresses: at most 10 are checked; other accounts from those addresses are not affected', async () => {
      const acct = await signUp(env.app);
      const other = await signUp(env.app);
      const form = await loginForm(server.url);
      const results = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => postLogin(server.url, form, acct.email, 'wrong password!', `203.0.113.${i + 1}`)));
      const counts = tally(results.map((r) => r.status));
      expect(counts[401] ?? 0, JSON.stringify(counts)).to.be.at.most(LIMITS.perAccount.points);
      expect(counts[401] ?? 0, JSON.stringify(counts)).to.be.greaterThan(LIMITS.perIpAccount.points);
      expect(counts[429] ?? 0).to.equal(PARALLEL - (counts[401] ?? 0));
      const limited = results.find((r) => r.status === 429)!;
      expect(message(limited.text)).to.include('sign-in with it is paused');
      // The owner, from a fresh address, is paused too (that is the point) …
      expect((await postLogin(server.url, form, acct.email, acct.password, '198.51.100.7')).status).to.equal(429);
      // … but another account from one of the same addresses still logs in.
      expect((await postLogin(server.url, form, other.email, other.password, '203.0.113.1')).status).to.equal(303);
    });

    it('wrong passwords from many addresses of one IPv6 network count as one client', async () => {
      const acct = await signUp(env.app);
      const form = await loginForm(server.url);
      const statuses: number[] = [];
      // One /56 (here six /64s in it): the per-address-and-account limit (5), not the per-account one (10), stops them.
      for (let i = 1; i <= LIMITS.perIpAccount.points + 1; i++) statuses.push((await postLogin(server.url, form, acct.email, 'wrong password!', `2001:db8:7:${i}::${i}`)).status);
      expect(statuses).to.deep.equal([401, 401, 401, 401, 401, 429]);
    });

    it('an email with no account gets the same answers, in the same numbers, as one with an account', async () => {
      const acct = await signUp(env.app);
      const unknown = `nobody-${randomToken(6).toLowerCase()}@example.test`;
      const form = await loginForm(server.url);
      const run = (email: string, net: string) => Promise.all(Array.from({ length: 15 }, (_, i) => postLogin(server.url, form, email, 'wrong password!', `${net}.${i + 1}`)));
      const [known, nobody] = [await run(acct.email, '192.0.2'), await run(unknown, '198.18.0')];
      expect(tally(known.map((r) => r.status))).to.deep.equal(tally(nobody.map((r) => r.status)));
      expect(message(known.find((r) => r.status === 429)!.text)).to.equal(message(nobody.find((r) => r.status === 429)!.text));
      expect(message(known.find((r) => r.status === 401)!.text)).to.equal(message(nobody.find((r) => r.status === 401)!.text));
    });

    it('a right password gives its point back: logging in more often than any limit never gets 429', async () => {
      const acct = await signUp(env.app);
      for (let i = 0; i < LIMITS.perAccount.points + 3; i++) {
        const agent = supertest.agent(server.url);
        const page = await agent.get('/login').expect(200);
        await agent.post('/login').type('form').send({ _csrf: csrfFrom(page.text), email: acct.email, password: acct.password }).expect(303);
      }
    });

    it('an empty password is refused (422) without counting as an attempt', async () => {
      const acct = await signUp(env.app);
      const form = await loginForm(server.url);
      for (let i = 0; i < LIMITS.perIpAccount.points + 2; i++) expect((await postLogin(server.url, form, acct.email, '')).status).to.equal(422);
      expect((await postLogin(server.url, form, acct.email, acct.password)).status).to.equal(303);
    });
  });
});
