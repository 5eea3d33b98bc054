// Team members with roles (issue 14 item 15): invitations by email, owner/admin/agent/viewer through
// the dashboard and the API, agents' caps and their own records only, who made what.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { csrfFrom, fieldError, signUp, useEnv, type Account, type TestEnv } from './support/harness.ts';
import { startSmtp, type TestSmtp } from './support/smtp.ts';
import { apiClient, expectProblem } from './support/api.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

type Agent = ReturnType<typeof supertest.agent>;
interface Member {
  agent: Agent;
  csrf: string;
  email: string;
  name: string;
}

const INVITE_LINK = /id="invite-link">([^<]+)</;

forEachTarget('team members with roles', (target) => {
  let smtp: TestSmtp;
  before(async () => {
    smtp = await startSmtp();
  });
  after(async () => {
    await smtp?.close();
  });
  const env: TestEnv = useEnv(target, () => ({
    env: { SMTP_URL: smtp.url, MAIL_FROM: 'pay@paylink.test' },
    apiLimit: { points: 100_000, durationSec: 60 },
    loginLimits: { perIpAccount: { points: 1_000, durationSec: 900 }, perAccount: { points: 1_000, durationSec: 900 }, perIp: { points: 10_000, durationSec: 3600 } },
  }));

  let n = 0;
  const unique = (base: string) => `${base}-${++n}-${Math.random().toString(36).slice(2, 7)}@example.test`;
  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;

  /** Invites through Settings → Team; the answer (201 with the link shown once, or the 4xx page). */
  const invite = (by: { agent: Agent; csrf: string }, fields: Record<string, string>) =>
    by.agent.post('/app/settings/team/invites').type('form').send({ _csrf: by.csrf, role: 'agent', amount_cap: '', ...fields });

  /** Accepts an invitation link in a fresh browser: a signed-in member. */
  const join = async (url: string, name: string): Promise<Agent> => {
    const agent = supertest.agent(env.app);
    const path = new URL(url).pathname;
    const page = await agent.get(path).expect(200);
    const res = await agent.post(path).type('form').send({ _csrf: csrfFrom(page.text), name, password: 'a long team password' });
    expect(res.status, res.text.slice(0, 400)).to.equal(303);
    return agent;
  };

  /** A new member with `role` (and cap, for an agent), invited by `by` and signed in. */
  const member = async (by: { agent: Agent; csrf: string }, role: string, opts: { cap?: string; name?: string } = {}): Promise<Member> => {
    const email = unique(role);
    const res = await invite(by, { email, role, amount_cap: opts.cap ?? '' });
    expect(res.status, res.text.match(/class="error"[^>]*>[^<]+/g)?.join(' | ')).to.equal(201);
    const name = opts.name ?? `${role[0].toUpperCase()}${role.slice(1)} ${n}`;
    const agent = await join(INVITE_LINK.exec(res.text)![1], name);
    const dash = await agent.get('/app').expect(200);
    return { agent, csrf: csrfFrom(dash.text), email, name };
  };

  const postRequest = (m: { agent: Agent; csrf: string }, fields: Record<string, string> = {}) =>
    m.agent.post('/app/requests').type('form').send({
      _csrf: m.csrf, amount: '20.00', currency: 'EUR', description: 'Phone order', reference: '', customer_name: 'Caller', customer_email: unique('caller'),
      customer_phone: '', expires_days: '7', max_uses: '1', reminder_frequency: '', reminder_max: '3', notify_before: '', ...fields,
    });
  const postLink = (m: { agent: Agent; csrf: string }, fields: Record<string, string> = {}) =>
    m.agent.post('/app/links').type('form').send({ _csrf: m.csrf, type: 'amount', name: `Deposit ${++n}`, amount: '15.00', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on', ...fields });
  const idFrom = (location: string) => location.split('/').pop()!;

  describe('invitations', () => {
    it('invites by email with a single-use 7-day link; the invitee chooses name and password and joins that merchant', async () => {
      const owner = await signUp(env.app);
      const email = unique('ada');
      const res = await invite(owner, { email: email.toUpperCase(), role: 'agent', amount_cap: '50' });
      expect(res.status).to.equal(201);
      await env.rt.jobs.drain();
      const mail = smtp.messages.find((m) => m.envelope.to.includes(email));
      expect(mail, 'invitation email').to.exist;
      expect(mail!.headers.get('subject')).to.match(/invited you to Shop/);
      const url = /http:\/\/pay\.test\/signup\/join\/[A-Za-z0-9_-]{43}/.exec(mail!.text ?? '')![0];
      expect(INVITE_LINK.exec(res.text)![1]).to.equal(url);
      // Only a keyed hash of the token is stored.
      expect(JSON.stringify(await env.rt.db('account_tokens'))).not.to.include(url.split('/').pop());

      const page = await supertest(env.app).get(new URL(url).pathname).expect(200);
      expect(page.text).to.include(`Join Shop ${owner.handle}`).and.include(email).and.include('agent');
      const agent = supertest.agent(env.app);
      const form = await agent.get(new URL(url).pathname);
      // A bad name and a short password: 422 by the fields, the invitation still good.
      const bad = await agent.post(new URL(url).pathname).type('form').send({ _csrf: csrfFrom(form.text), name: '', password: 'short' });
      expect(bad.status).to.equal(422);
      expect(fieldError(bad.text, 'name')).to.match(/name/i);
      expect(fieldError(bad.text, 'password')).to.match(/10 characters/);
      const ok = await agent.post(new URL(url).pathname).type('form').send({ _csrf: csrfFrom(form.text), name: 'Ada Lovelace', password: 'a long team password' });
      expect(ok.status).to.equal(303);
      const home = await agent.get('/app').expect(200);
      expect(home.text).to.include('Welcome, Ada Lovelace').and.include('€50.00');

      const merchant = await merchantOf(owner);
      const ada = (await env.rt.services.merchants.members(merchant.key)).find((m) => m.email === email)!;
      expect(ada).to.include({ role: 'agent', amountCap: 5000, name: 'Ada Lovelace' });
      // Single use.
      const again = await supertest(env.app).get(new URL(url).pathname);
      expect(again.status).to.equal(410);
      expect(again.text).to.include('already used');
      // The team page lists her, and the invitation is no longer pending.
      const team = await owner.agent.get('/app/settings/team').expect(200);
      expect(team.text).to.include('Ada Lovelace').and.include('€50.00');
      expect(team.text).to.include('Pending invitations').and.include('None. Invitations you send');
    });

    it('refuses a bad email, an unknown role and a cap that is not an amount, each by its field, and invites nobody', async () => {
      const owner = await signUp(env.app);
      const before = await env.rt.db('account_tokens').count({ n: '*' });
      const res = await invite(owner, { email: 'not-an-email', role: 'superuser', amount_cap: 'lots' });
      expect(res.status).to.equal(422);
      expect(fieldError(res.text, 'email')).to.match(/valid email/);
      expect(fieldError(res.text, 'role')).to.match(/Choose a role/);
      expect(fieldError(res.text, 'amount_cap')).to.match(/amount/i);
      expect(await env.rt.db('account_tokens').count({ n: '*' })).to.deep.equal(before);
      // Someone who has an account already is refused by the email field.
      const other = await signUp(env.app);
      const taken = await invite(owner, { email: other.email, role: 'viewer' });
      expect(taken.status).to.equal(422);
      expect(fieldError(taken.text, 'email')).to.match(/already has a Paylink account/);
    });

    it('resends (the old link stops working) and revokes pending invitations; an expired link says so', async () => {
      const owner = await signUp(env.app);
      const email = unique('bob');
      const first = INVITE_LINK.exec((await invite(owner, { email, role: 'viewer' })).text)![1];
      const [pending] = await env.rt.services.accounts.pendingInvites((await merchantOf(owner)).key);
      const resent = await owner.agent.post(`/app/settings/team/invites/${pending.key}/resend`).type('form').send({ _csrf: owner.csrf });
      expect(resent.status).to.equal(201);
      const second = INVITE_LINK.exec(resent.text)![1];
      expect(second).not.to.equal(first);
      expect((await supertest(env.app).get(new URL(first).pathname)).status).to.equal(410);
      expect((await supertest(env.app).get(new URL(second).pathname)).status).to.equal(200);
      const [now] = await env.rt.services.accounts.pendingInvites((await merchantOf(owner)).key);
      await owner.agent.post(`/app/settings/team/invites/${now.key}/revoke`).type('form').send({ _csrf: owner.csrf }).expect(303);
      expect((await supertest(env.app).get(new URL(second).pathname)).status).to.equal(410);
      // Another merchant's invitation id is not found.
      const stranger = await signUp(env.app);
      const third = await invite(owner, { email: unique('carl'), role: 'viewer' });
      const [mine] = await env.rt.services.accounts.pendingInvites((await merchantOf(owner)).key);
      expect((await stranger.agent.post(`/app/settings/team/invites/${mine.key}/revoke`).type('form').send({ _csrf: stranger.csrf })).status).to.equal(404);
      // Eight days later the link has expired.
      env.clock.advance(8 * 86_400_000);
      const late = await supertest(env.app).get(new URL(INVITE_LINK.exec(third.text)![1]).pathname);
      expect(late.status).to.equal(410);
      expect(late.text).to.include('expired');
    });
  });

  describe('owners', () => {
    it('never leaves a merchant without an owner; only an owner touches owners', async () => {
      const owner = await signUp(env.app);
      const merchant = await merchantOf(owner);
      const [me] = await env.rt.services.merchants.members(merchant.key);
      // The only owner can neither demote nor remove themselves.
      const demote = await owner.agent.post(`/app/settings/team/members/${me.id}`).type('form').send({ _csrf: owner.csrf, role: 'admin', amount_cap: '' });
      expect(demote.status).to.equal(409);
      expect(demote.text).to.include('only owner');
      expect((await owner.agent.post(`/app/settings/team/members/${me.id}/remove`).type('form').send({ _csrf: owner.csrf })).status).to.equal(409);
      expect((await env.rt.services.merchants.members(merchant.key))[0].role).to.equal('owner');

      // An admin can neither invite an owner nor change or remove one.
      const admin = await member(owner, 'admin');
      expect((await invite(admin, { email: unique('o'), role: 'owner' })).status).to.equal(403);
      const adminDemotes = await admin.agent.post(`/app/settings/team/members/${me.id}`).type('form').send({ _csrf: admin.csrf, role: 'viewer', amount_cap: '' });
      expect(adminDemotes.status).to.equal(403);
      expect(adminDemotes.text).to.include('Only an owner');
      expect((await admin.agent.post(`/app/settings/team/members/${me.id}/remove`).type('form').send({ _csrf: admin.csrf })).status).to.equal(403);

      // With a second owner, the first may step down.
      const second = await member(owner, 'owner');
      const secondRow = (await env.rt.services.merchants.members(merchant.key)).find((m) => m.email === second.email)!;
      expect(secondRow.role).to.equal('owner');
      await owner.agent.post(`/app/settings/team/members/${me.id}`).type('form').send({ _csrf: owner.csrf, role: 'admin', amount_cap: '' }).expect(303);
      // …and now the second is the last one.
      expect((await second.agent.post(`/app/settings/team/members/${secondRow.id}/remove`).type('form').send({ _csrf: second.csrf })).status).to.equal(409);
    });

    it('changes a role and a cap, refusing bad values by the field', async () => {
      const owner = await signUp(env.app);
      const agent = await member(owner, 'agent', { cap: '10' });
      const merchant = await merchantOf(owner);
      const row = (await env.rt.services.merchants.members(merchant.key)).find((m) => m.email === agent.email)!;
      const bad = await owner.agent.post(`/app/settings/team/members/${row.id}`).type('form').send({ _csrf: owner.csrf, role: 'wizard', amount_cap: 'ten' });
      expect(bad.status).to.equal(422);
      expect(bad.text).to.match(new RegExp(`id="m-${row.id}-amount_cap-error"[^>]*>[^<]*amount`, 'i'));
      expect(bad.text).to.match(new RegExp(`id="m-${row.id}-role-error"[^>]*>Choose a role`));
      await owner.agent.post(`/app/settings/team/members/${row.id}`).type('form').send({ _csrf: owner.csrf, role: 'agent', amount_cap: '75.50' }).expect(303);
      expect((await env.rt.services.merchants.member(merchant, row.id)).amountCap).to.equal(7550);
      // The new cap holds at the agent's next request, without signing in again.
      expect((await postRequest(agent, { amount: '75.51' })).status).to.equal(403);
      expect((await postRequest(agent, { amount: '75.50' })).status).to.equal(303);
    });

    it('removes a member: signed out at once, unable to sign in, what they made still names them', async () => {
      const owner = await signUp(env.app);
      const agent = await member(owner, 'agent', { name: 'Grace Hopper' });
      const made = await postRequest(agent);
      const merchant = await merchantOf(owner);
      const row = (await env.rt.services.merchants.members(merchant.key)).find((m) => m.email === agent.email)!;
      await owner.agent.post(`/app/settings/team/members/${row.id}/remove`).type('form').send({ _csrf: owner.csrf }).expect(303);
      expect((await agent.agent.get('/app')).status).to.equal(303);
      const login = supertest.agent(env.app);
      const page = await login.get('/login');
      expect((await login.post('/login').type('form').send({ _csrf: csrfFrom(page.text), email: agent.email, password: 'a long team password' })).status).to.equal(401);
      const show = await owner.agent.get(made.headers.location).expect(200);
      expect(show.text).to.include('Grace Hopper (agent, no longer on the team)');
      // Their address is free for a new invitation.
      expect((await invite(owner, { email: agent.email, role: 'viewer' })).status).to.equal(201);
    });
  });

  describe('agents', () => {
    it('create requests and links up to their cap; over it is a 403 naming the cap, by the amount, and nothing is written', async () => {
      const owner = await signUp(env.app);
      const agent = await member(owner, 'agent', { cap: '50' });
      const merchant = await merchantOf(owner);
      const count = async () => Number((await env.rt.db('links').where({ merchant_id: merchant.key }).count({ n: '*' }))[0].n);
      const before = await count();
      const over = await postRequest(agent, { amount: '50.01' });
      expect(over.status).to.equal(403);
      expect(fieldError(over.text, 'amount')).to.include('€50.00').and.include('€50.01');
      expect((await postRequest(agent, { amount: '20.00', currency: 'USD' })).status).to.equal(403);
      const overLink = await postLink(agent, { amount: '60.00' });
      expect(overLink.status, overLink.text.match(/class="error"[^>]*>[^<]+/g)?.join(' | ')).to.equal(403);
      expect(fieldError(overLink.text, 'amount')).to.include('€50.00');
      expect(await count()).to.equal(before);
      expect((await postRequest(agent, { amount: '50.00' })).status).to.equal(303);
      const link = await postLink(agent, { amount: '49.00' });
      expect(link.status).to.equal(303);
      // Editing their link over the cap is refused too.
      const id = idFrom(link.headers.location);
      const edit = await agent.agent.get(`/app/links/${id}/edit`).expect(200);
      const raised = await agent.agent.post(`/app/links/${id}`).type('form').send({ _csrf: csrfFrom(edit.text), name: 'Raised', path: 'raised', amount: '99.00', currency: 'EUR', limit: 'unlimited', redirect_target: 'same' });
      expect(raised.status, raised.text.match(/class="error"[^>]*>[^<]+/g)?.join(' | ')).to.equal(403);
      expect(fieldError(raised.text, 'amount')).to.include('€50.00');
    });

    it('see only their own links, requests, customers and payments — lists, searches, direct addresses', async () => {
      const owner = await signUp(env.app);
      const ada = await member(owner, 'agent', { name: 'Ada' });
      const bob = await member(owner, 'agent', { name: 'Bob' });
      const adaReq = idFrom((await postRequest(ada, { customer_name: 'Alice Adams' })).headers.location);
      const bobReq = idFrom((await postRequest(bob, { customer_name: 'Bert Brown' })).headers.location);
      const adaLink = idFrom((await postLink(ada, { name: 'Ada deposit' })).headers.location);
      const bobLink = idFrom((await postLink(bob, { name: 'Bob deposit' })).headers.location);
      const merchant = await merchantOf(owner);
      const bert = (await env.rt.services.customers.search(merchant.key, { q: 'Bert' })).items[0];
      const alice = (await env.rt.services.customers.search(merchant.key, { q: 'Alice' })).items[0];

      const requests = await ada.agent.get('/app/requests').expect(200);
      expect(requests.text).to.include(adaReq).and.not.include(bobReq);
      expect(requests.text).not.to.include('Bert Brown');
      const links = await ada.agent.get('/app/links?kind=all').expect(200);
      expect(links.text).to.include('Ada deposit').and.not.include('Bob deposit');
      const customers = await ada.agent.get('/app/customers').expect(200);
      expect(customers.text).to.include('Alice Adams').and.not.include('Bert Brown');
      expect((await ada.agent.get('/app/customers?q=Bert')).text).not.to.include('Bert Brown');
      for (const path of [`/app/requests/${bobReq}`, `/app/links/${bobLink}`, `/app/links/${bobLink}/edit`, `/app/customers/${bert.id}`, `/app/customers/${bert.id}/edit`]) {
        expect((await ada.agent.get(path)).status, path).to.equal(404);
      }
      expect((await ada.agent.post(`/app/requests/${bobReq}/cancel`).type('form').send({ _csrf: ada.csrf })).status).to.equal(404);
      expect((await ada.agent.post(`/app/links/${bobLink}/deactivate`).type('form').send({ _csrf: ada.csrf })).status).to.equal(404);
      // Naming another agent's customer on a new request: not one of hers.
      const theirs = await postRequest(ada, { customer_id: bert.id, customer_name: '', customer_email: '' });
      expect(theirs.status).to.equal(422);
      for (const path of [`/app/requests/${adaReq}`, `/app/links/${adaLink}`, `/app/customers/${alice.id}`]) {
        expect((await ada.agent.get(path)).status, path).to.equal(200);
      }
      // The owner sees everyone's, and who made each.
      const all = await owner.agent.get('/app/requests').expect(200);
      expect(all.text).to.include(adaReq).and.include(bobReq);
      expect((await owner.agent.get(`/app/links/${bobLink}`)).text).to.include('Created by Bob (agent)');
      expect((await owner.agent.get(`/app/requests/${adaReq}`)).text).to.include('on the dashboard by Ada (agent)');
    });

    it('have no settings, API keys, exports, reports, team, imports or refunds (403), and no navigation to them', async () => {
      const owner = await signUp(env.app);
      const agent = await member(owner, 'agent');
      const home = await agent.agent.get('/app').expect(200);
      for (const label of ['>Reports<', '>Settings<', '>Team<', '>Payments<', '>Plugins<', '>Activity<']) expect(home.text, label).not.to.include(label);
      expect(home.text).to.include('>Your account<');
      const account = await agent.agent.get('/app/settings').expect(200);
      expect(account.text).to.include('Change password').and.not.include('API keys').and.not.include('Save settings');
      for (const path of ['/app/settings/team', '/app/settings/payments', '/app/settings/templates', '/app/settings/webhooks', '/app/reports/reconciliation', '/app/payments.csv', '/app/activity', '/app/customers/import', '/app/requests/import', '/app/plugins']) {
        const res = await agent.agent.get(path);
        expect(res.status, path).to.equal(403);
      }
      const denied = await agent.agent.get('/app/settings/team');
      expect(denied.text).to.include('Not allowed').and.include('Only owners and admins can manage the team');
      for (const [path, body] of [['/app/settings', { name: 'Hijack' }], ['/app/settings/api-keys', { name: 'mine' }], ['/app/settings/team/invites', { email: unique('x'), role: 'owner' }], ['/app/products', { name: 'P', price: '1' }]] as const) {
        expect((await agent.agent.post(path).type('form').send({ _csrf: agent.csrf, ...body })).status, path).to.equal(403);
      }
      // An htmx request gets the message as a fragment.
      const fragment = await agent.agent.get('/app/settings/team').set('HX-Request', 'true');
      expect(fragment.status).to.equal(403);
      expect(fragment.text).not.to.include('<html');
      expect(fragment.text).to.include('Only owners and admins');
      // Their own sign-in stays theirs to change.
      expect((await agent.agent.get('/app/settings/password')).status).to.equal(200);
    });
  });

  describe('viewers', () => {
    it('read everything and change nothing (every change is a 403)', async () => {
      const owner = await signUp(env.app);
      const agent = await member(owner, 'agent');
      const viewer = await member(owner, 'viewer');
      const req = idFrom((await postRequest(agent, { customer_name: 'Vera Visible' })).headers.location);
      const link = idFrom((await postLink(owner, { name: 'Owner link' })).headers.location);
      expect((await viewer.agent.get('/app/requests')).text).to.include(req);
      expect((await viewer.agent.get(`/app/links/${link}`)).status).to.equal(200);
      expect((await viewer.agent.get('/app/customers')).text).to.include('Vera Visible');
      expect((await viewer.agent.get('/app/reports/reconciliation')).status).to.equal(200);
      expect((await viewer.agent.get('/app/payments.csv')).status).to.equal(200);
      const show = await viewer.agent.get(`/app/links/${link}`);
      expect(show.text).not.to.include(`/app/links/${link}/edit`);
      const merchant = await merchantOf(owner);
      const customer = (await env.rt.services.customers.search(merchant.key, { q: 'Vera' })).items[0];
      const posts: [string, Record<string, string>][] = [
        ['/app/links', { type: 'amount', name: 'V', amount: '1.00', currency: 'EUR' }],
        [`/app/links/${link}/deactivate`, {}],
        [`/app/links/${link}/delete`, {}],
        ['/app/requests', { amount: '1.00', currency: 'EUR', customer_name: 'X', customer_email: 'x@example.test' }],
        [`/app/requests/${req}/cancel`, {}],
        ['/app/customers', { name: 'New' }],
        [`/app/customers/${customer.id}`, { name: 'Changed' }],
        [`/app/customers/${customer.id}/text-to-pay`, { amount: '1.00' }],
        ['/app/tags', { name: 'x', kind: 'link' }],
        ['/app/settings', { name: 'x' }],
      ];
      for (const [path, body] of posts) {
        const res = await viewer.agent.post(path).type('form').send({ _csrf: viewer.csrf, ...body });
        expect(res.status, path).to.equal(403);
      }
      expect((await viewer.agent.get('/app/links/new')).status).to.equal(403);
      expect((await env.rt.services.links.get(merchant, link)).active).to.equal(true);
    });
  });

  describe('API keys with roles', () => {
    const keyOf = async (acct: Account, fields: Record<string, string>) => {
      const res = await acct.agent.post('/app/settings/api-keys').type('form').send({ _csrf: acct.csrf, ...fields });
      expect(res.status, res.text.match(/class="error"[^>]*>[^<]+/g)?.join(' | ')).to.equal(201);
      return /id="new-key-secret">([^<]+)</.exec(res.text)![1];
    };

    it('an agent key sees only what it created and is held to its cap; a viewer key only reads', async () => {
      const owner = await signUp(env.app);
      const admin = apiClient(env.app, await keyOf(owner, { name: 'full', role: 'admin' }));
      const shop = apiClient(env.app, await keyOf(owner, { name: 'shop', role: 'agent', amount_cap: '100' }));
      const till = apiClient(env.app, await keyOf(owner, { name: 'till', role: 'agent', amount_cap: '' }));
      const viewer = apiClient(env.app, await keyOf(owner, { name: 'reader', role: 'viewer' }));

      const body = (name: string, amount: number) => ({ amount, currency: 'EUR', description: name, customer: { name, email: unique(name.toLowerCase()) } });
      const mine = await shop('post', '/payment_requests', body('Sam', 5000));
      expect(mine.status, mine.text).to.equal(201);
      const theirs = await till('post', '/payment_requests', { ...body('Tia', 30000), channels: ['email'] });
      expect(theirs.status).to.equal(201);
      // Another key's message cannot be resent by an agent key (404, as its link is); its own key can.
      const delivery = JSON.parse(theirs.text).deliveries[0].id;
      expect((await shop('post', `/deliveries/${delivery}/resend`)).status).to.equal(404);
      const over = await shop('post', '/payment_requests', body('Sam', 10001));
      const problem = expectProblem(over, 403, 'amount_over_cap');
      expect((problem as unknown as { title: string }).title).to.include('€100.00');
      expectProblem(await shop('post', '/links', { type: 'amount', name: 'Big', amount: 20000, currency: 'EUR' }), 403, 'amount_over_cap');

      const list = JSON.parse((await shop('get', '/payment_requests')).text);
      expect(list.data.map((r: { id: string }) => r.id)).to.deep.equal([JSON.parse(mine.text).id]);
      expect((await shop('get', `/payment_requests/${JSON.parse(theirs.text).id}`)).status).to.equal(404);
      const customers = JSON.parse((await shop('get', '/customers')).text);
      expect(customers.data.map((c: { name: string }) => c.name)).to.deep.equal(['Sam']);
      const tia = JSON.parse(theirs.text).customer.id;
      expect((await shop('get', `/customers/${tia}`)).status).to.equal(404);
      expect((await shop('post', '/payment_requests', { amount: 100, currency: 'EUR', customer_id: tia })).status).to.equal(422);
      const links = JSON.parse((await shop('get', '/links')).text);
      expect(links.data).to.have.length(1);
      expect(links.data[0].id).to.equal(JSON.parse(mine.text).link_id);
      expect(JSON.parse((await shop('get', '/payments')).text).data).to.deep.equal([]);
      // No settings through the API either.
      expectProblem(await shop('get', '/webhook_endpoints'), 403, 'forbidden');
      expectProblem(await shop('post', '/products', { name: 'x', price: 100, currency: 'EUR' }), 403, 'forbidden');

      // The viewer key reads everything, changes nothing.
      expect(JSON.parse((await viewer('get', '/payment_requests')).text).data).to.have.length(2);
      const refused = expectProblem(await viewer('post', '/links', { type: 'amount', name: 'x', amount: 100, currency: 'EUR' }), 403, 'forbidden');
      expect(refused.errors).to.deep.equal([]);
      expectProblem(await viewer('post', `/payment_requests/${JSON.parse(mine.text).id}/cancel`), 403, 'forbidden');
      // The admin key, like every key made before roles, can do everything.
      expect(JSON.parse((await admin('get', '/payment_requests')).text).data).to.have.length(2);
      expect((await admin('post', '/links', { type: 'amount', name: 'Big', amount: 20000, currency: 'EUR' })).status).to.equal(201);
    });

    it('refuses an unknown role and a cap that is not an amount when a key is made, by the field', async () => {
      const owner = await signUp(env.app);
      const res = await owner.agent.post('/app/settings/api-keys').type('form').send({ _csrf: owner.csrf, name: 'x', role: 'owner', amount_cap: 'ten' });
      expect(res.status).to.equal(422);
      expect(res.text).to.match(/id="f-key-role-error">Choose a role: admin, agent, viewer/);
      expect(res.text).to.match(/id="f-key-amount_cap-error">[^<]*amount/i);
      expect(await env.rt.services.apiKeys.list((await merchantOf(owner)).key)).to.have.length(0);
    });
  });
});
