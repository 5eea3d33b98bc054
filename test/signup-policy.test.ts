import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { csrfFrom, signUp, uniqueHandle, useEnv, type TestEnv } from './support/harness.ts';
import { runCli } from '../src/cli.ts';
import { loadConfig } from '../src/config.ts';

class Capture {
  text = '';
  write(chunk: string) {
    this.text += chunk;
    return true;
  }
}

/** The CLI on the env's database, data folder and secret (what an admin runs beside the server). */
async function cli(env: TestEnv, ...argv: string[]) {
  const c = env.config;
  const out = new Capture();
  const err = new Capture();
  const code = await runCli(
    argv,
    {
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      DATABASE_URL: c.database.client === 'sqlite' ? c.database.filename : c.database.url,
      PAYLINK_DATA_DIR: c.dataDir,
      SESSION_SECRET: c.sessionSecret ?? '',
      BASE_URL: c.baseUrl,
      PAYLINK_SIGNUP: c.signup,
      ...(c.redisUrl ? { REDIS_URL: c.redisUrl, REDIS_PREFIX: c.redisPrefix } : {}),
    },
    out,
    err,
  );
  return { code, stdout: out.text, stderr: err.text };
}

/** Posts the sign-up form with a fresh agent; `invite` is the invitation token when there is one. */
async function postSignup(env: TestEnv, fields: { handle?: string; email?: string; invite?: string } = {}) {
  const agent = supertest.agent(env.app);
  const page = await agent.get('/signup' + (fields.invite ? `?invite=${encodeURIComponent(fields.invite)}` : ''));
  // A refused page still carries the CSRF token of the session (the layout renders it for the log-in link's forms).
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? csrfFrom((await agent.get('/login')).text);
  const handle = fields.handle ?? uniqueHandle('pol');
  const res = await agent
    .post('/signup')
    .type('form')
    .send({ _csrf: csrf, name: `Shop ${handle}`, handle, email: fields.email ?? `${handle}@example.test`, password: 'correct horse battery', ...(fields.invite ? { invite: fields.invite } : {}) });
  return { page, res, agent, handle };
}

const userCount = async (env: TestEnv) => Number(((await env.rt.db('users').count({ n: '*' })) as { n: number | string }[])[0].n);

forEachTarget('sign-up policy', (target) => {
  it('reads PAYLINK_SIGNUP: open by default, open|invite|closed, anything else named as a config error', () => {
    expect(loadConfig({ DATABASE_URL: ':memory:' }).signup).to.equal('open');
    expect(loadConfig({ DATABASE_URL: ':memory:', PAYLINK_SIGNUP: 'Invite' }).signup).to.equal('invite');
    expect(loadConfig({ DATABASE_URL: ':memory:', PAYLINK_SIGNUP: 'closed' }).signup).to.equal('closed');
    expect(() => loadConfig({ DATABASE_URL: ':memory:', PAYLINK_SIGNUP: 'nobody' })).to.throw(/PAYLINK_SIGNUP: must be open/);
  });

  describe('open (default)', () => {
    const env = useEnv(target);
    it('lets anyone sign up, and the login page offers it', async () => {
      await signUp(env.app);
      await signUp(env.app);
      expect(await userCount(env)).to.equal(2);
      expect((await supertest(env.app).get('/login')).text).to.include('href="/signup"');
    });
  });

  describe('closed', () => {
    const env = useEnv(target, { env: { PAYLINK_SIGNUP: 'closed' } });

    it('allows the first account of a fresh install, then refuses the page and the form with 403', async () => {
      const first = await postSignup(env);
      expect(first.page.status).to.equal(200);
      expect(first.res.status).to.equal(303);
      const page = await supertest(env.app).get('/signup');
      expect(page.status).to.equal(403);
      expect(page.text).to.include('Sign-up is closed on this Paylink');
      const second = await postSignup(env);
      expect(second.res.status).to.equal(403);
      expect(second.res.text).to.include('Sign-up is closed on this Paylink');
      expect(await userCount(env)).to.equal(1);
      expect((await supertest(env.app).get('/login')).text).not.to.include('href="/signup"');
    });

    it('still creates accounts with the CLI', async () => {
      const handle = uniqueHandle('cli');
      const r = await cli(env, 'create-merchant', '--handle', handle, '--name', 'CLI Shop', '--email', `${handle}@example.test`, '--password', 'correct horse battery');
      expect(r.code, r.stderr).to.equal(0);
      expect(JSON.parse(r.stdout).handle).to.equal(handle);
      const agent = supertest.agent(env.app);
      const login = await agent.get('/login');
      await agent.post('/login').type('form').send({ _csrf: csrfFrom(login.text), email: `${handle}@example.test`, password: 'correct horse battery' }).expect(303);
      await agent.get('/app').expect(200);
    });
  });

  describe('invite', () => {
    const env = useEnv(target, { env: { PAYLINK_SIGNUP: 'invite' } });

    it('allows the first account without an invitation, then needs one (403 without)', async () => {
      expect((await postSignup(env)).res.status).to.equal(303);
      const page = await supertest(env.app).get('/signup');
      expect(page.status).to.equal(403);
      expect(page.text).to.include('needs an invitation');
      expect((await postSignup(env)).res.status).to.equal(403);
      expect(await userCount(env)).to.equal(1);
    });

    it('signs up with a CLI invitation, for the invited email only, once', async () => {
      const r = await cli(env, 'invite', '--email', 'Invited@Example.test');
      expect(r.code, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout);
      expect(out.email).to.equal('invited@example.test');
      // The CLI runs on the real clock (the env's is a manual one).
      expect(new Date(out.expires_at).getTime() - Date.now()).to.be.within(7 * 86_400_000 - 60_000, 7 * 86_400_000);
      const url = new URL(out.url);
      expect(url.origin + url.pathname).to.equal('http://pay.test/signup');
      const token = url.searchParams.get('invite')!;
      // Only a hash of the token is stored.
      const rows = await env.rt.db('account_tokens').where({ purpose: 'signup_invite' });
      expect(JSON.stringify(rows)).not.to.include(token);

      // The address typed in the form is ignored: the account gets the invited one.
      const done = await postSignup(env, { invite: token, email: 'someone-else@example.test' });
      expect(done.page.status).to.equal(200);
      expect(done.page.text).to.include('invited@example.test');
      expect(done.res.status, done.res.text.slice(0, 300)).to.equal(303);
      const user = await env.rt.services.merchants.getUserByEmail('invited@example.test');
      expect(user).to.not.equal(null);
      expect(await env.rt.services.merchants.getUserByEmail('someone-else@example.test')).to.equal(null);

      // Spent: the page and the form refuse it.
      const again = await postSignup(env, { invite: token });
      expect(again.page.status).to.equal(403);
      expect(again.page.text).to.include('already been used');
      expect(again.res.status).to.equal(403);
    });

    it('refuses an altered or expired invitation, and a failed sign-up keeps the invitation', async () => {
      const inv = await env.rt.services.accounts.createInvitation('later@example.test');
      const token = new URL(inv.url).searchParams.get('invite')!;
      const altered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
      const bad = await postSignup(env, { invite: altered });
      expect(bad.page.status).to.equal(403);
      expect(bad.page.text).to.include('not valid');
      expect(bad.res.status).to.equal(403);

      // A bad handle: 422, and the invitation still works.
      const agent = supertest.agent(env.app);
      const page = await agent.get(`/signup?invite=${token}`).expect(200);
      const res = await agent.post('/signup').type('form').send({ _csrf: csrfFrom(page.text), invite: token, name: 'Later', handle: 'X', password: 'correct horse battery' });
      expect(res.status).to.equal(422);
      expect(res.text).to.include('name="invite"');

      env.clock.advance(7 * 86_400_000 + 1_000);
      const late = await postSignup(env, { invite: token });
      expect(late.page.status).to.equal(403);
      expect(late.page.text).to.include('has expired');
      expect(late.res.status).to.equal(403);
      expect(await env.rt.services.merchants.getUserByEmail('later@example.test')).to.equal(null);
    });

    it('one invitation, 5 parallel sign-ups: exactly one account', async () => {
      const inv = await env.rt.services.accounts.createInvitation('race@example.test');
      const token = new URL(inv.url).searchParams.get('invite')!;
      const results = await Promise.all(Array.from({ length: 5 }, () => postSignup(env, { invite: token })));
      const statuses = results.map((r) => r.res.status).sort();
      expect(statuses.filter((s) => s === 303)).to.have.length(1);
      expect(statuses.every((s) => s === 303 || s === 403 || s === 422)).to.equal(true);
      expect(Number(((await env.rt.db('users').where({ email: 'race@example.test' }).count({ n: '*' })) as { n: number }[])[0].n)).to.equal(1);
    });
  });
});
