// Settings → Team and what an agent sees, in Chromium on a desktop and a phone: an owner invites an
// agent with a cap, the agent joins from the link and works on their own dashboard. Every page passes
// the layout audit and axe (no serious or critical violation) and is saved under /tmp/paylink-shots/.
import { expect } from 'chai';
import { DESKTOP, PHONE, servedMerchant, useBrowser, type ServedEnv, type TrackedPage } from '../support/browser.ts';
import { axeProblems } from '../support/axe.ts';
import { AUDIT } from '../support/audit.ts';
import type { Merchant } from '../../src/features/merchants/repository.ts';

type State = Awaited<ReturnType<TrackedPage['context']['storageState']>>;

describe('e2e: team members with roles', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let merchant: Merchant;
  let owner: State;
  let agent: State;
  let joinUrl: string;
  let otherRequest: string;

  before(async function () {
    this.timeout(60_000);
    const served = await servedMerchant(browser(), { name: 'Northwind Support Desk', handlePrefix: 'team' });
    ({ env, merchant } = served);
    owner = served.storageState;
    const { accounts, merchants, requests } = env.rt.services;
    const [me] = await merchants.members(merchant.key);
    // A team to show: an admin and a viewer who joined, an invitation still pending.
    for (const [email, role, name] of [['lena.admin@example.test', 'admin', 'Lena Fischer'], ['omar.viewer@example.test', 'viewer', 'Omar Haddad']] as const) {
      const inv = await accounts.inviteMember(merchant, me, { email, role });
      await accounts.joinTeam(inv.url.split('/').pop(), { name, password: 'a long team password' });
    }
    await accounts.inviteMember(merchant, me, { email: 'new.hire@example.test', role: 'agent', amount_cap: '100' });
    // The owner's own request, which the agent must not see.
    otherRequest = (await requests.create({ ...merchant, actor: { role: 'owner', userKey: me.key, apiKeyKey: null, amountCap: null } }, { amount: 99000, currency: 'EUR', description: 'Annual contract', customer: { name: 'Big Client Ltd', email: 'big@example.test' } }, { source: 'dashboard' })).id;

    // The owner invites an agent in the browser; the agent joins from the link shown.
    const tab = await browser().newPage({ storageState: owner });
    await tab.page.goto(`${env.origin}/app/settings/team`);
    await tab.page.getByLabel('Email address').fill('ada.agent@example.test');
    await tab.page.getByLabel('Role', { exact: true }).selectOption('agent');
    await tab.page.getByLabel('Cap for an agent (EUR)').fill('250');
    await tab.page.getByRole('button', { name: 'Send invitation' }).click();
    joinUrl = (await tab.page.locator('#invite-link').textContent())!.trim();
    tab.assertClean();
    await tab.close();

    const join = await browser().newPage();
    await join.page.goto(joinUrl);
    await join.page.getByLabel('Your name').fill('Ada Okafor');
    await join.page.getByLabel('Choose a password').fill('a long team password');
    await join.page.getByRole('button', { name: 'Join and sign in' }).click();
    await join.page.waitForURL(`${env.origin}/app`);
    // Ada takes a call: a payment request within her cap.
    await join.page.goto(`${env.origin}/app/requests/new`);
    await join.page.getByLabel('Amount').fill('120.00');
    await join.page.getByLabel('What it is for (optional)').fill('Replacement router, order by phone');
    await join.page.getByLabel('Name', { exact: true }).fill('Chidi Eze');
    await join.page.getByRole('textbox', { name: 'Email', exact: true }).fill('chidi@example.test');
    await join.page.getByRole('button', { name: 'Create request' }).click();
    await join.page.locator('.created-by', { hasText: 'Ada Okafor (agent)' }).waitFor();
    join.assertClean();
    agent = await join.context.storageState();
    await join.close();
  });
  after(() => env?.close());

  const pages: { name: string; path: string; as: 'owner' | 'agent' | 'anon'; status?: number; fill?: (tab: TrackedPage) => Promise<void> }[] = [
    { name: 'team', path: '/app/settings/team', as: 'owner' },
    {
      name: 'team-errors',
      path: '/app/settings/team',
      as: 'owner',
      status: 422,
      fill: async (tab) => {
        await tab.page.getByLabel('Email address').fill('not-an-email');
        await tab.page.getByLabel('Cap for an agent (EUR)').fill('lots');
        await tab.page.getByRole('button', { name: 'Send invitation' }).click();
        await tab.page.locator('#f-email-error', { hasText: /\w/ }).waitFor();
      },
    },
    { name: 'team-api-keys', path: '/app/settings#api-keys', as: 'owner' },
    { name: 'team-join-used', path: 'JOIN', as: 'anon', status: 410 },
    { name: 'agent-dashboard', path: '/app', as: 'agent' },
    { name: 'agent-requests', path: '/app/requests', as: 'agent' },
    { name: 'agent-request-new-over-cap', path: '/app/requests/new', as: 'agent', status: 403, fill: async (tab) => {
      await tab.page.getByLabel('Amount').fill('900.00');
      await tab.page.getByLabel('Name', { exact: true }).fill('Chidi Eze');
      await tab.page.getByRole('textbox', { name: 'Email', exact: true }).fill('chidi@example.test');
      await tab.page.getByRole('button', { name: 'Create request' }).click();
      await tab.page.locator('#f-amount-error', { hasText: '€250.00' }).waitFor();
    } },
    { name: 'agent-links', path: '/app/links', as: 'agent' },
    { name: 'agent-customers', path: '/app/customers', as: 'agent' },
    { name: 'agent-account', path: '/app/settings', as: 'agent' },
    { name: 'agent-forbidden', path: '/app/settings/team', as: 'agent', status: 403 },
  ];

  for (const [device, viewport] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
    describe(device, () => {
      for (const p of pages) {
        it(p.name, async () => {
          const tab = await browser().newPage({ viewport, ...(p.as === 'anon' ? {} : { storageState: p.as === 'owner' ? owner : agent }) });
          try {
            const url = p.path === 'JOIN' ? joinUrl : `${env.origin}${p.path}`;
            if (p.status) tab.expectError({ status: p.status, path: p.name === 'agent-request-new-over-cap' ? '/app/requests' : p.name === 'team-errors' ? '/app/settings/team/invites' : new URL(url).pathname });
            await tab.page.goto(url);
            if (p.fill) await p.fill(tab);
            await tab.screenshot(`${p.name}-${device}`);
            expect(await tab.page.evaluate(AUDIT)).to.deep.equal([]);
            expect(await axeProblems(tab.page)).to.deep.equal([]);
            tab.assertClean();
          } finally {
            await tab.close();
          }
        });
      }
    });
  }

  it('shows the agent only their own work, and no way to settings, reports or the team', async () => {
    const tab = await browser().newPage({ storageState: agent });
    try {
      await tab.page.goto(`${env.origin}/app/requests`);
      const main = (await tab.page.locator('main').textContent())!;
      expect(main).to.include('Chidi Eze').and.not.include('Big Client');
      const nav = (await tab.page.locator('nav.sidenav').textContent())!;
      for (const label of ['Reports', 'Team', 'Activity', 'Plugins']) expect(nav).not.to.include(label);
      tab.expectError({ status: 404, path: `/app/requests/${otherRequest}` });
      await tab.page.goto(`${env.origin}/app/requests/${otherRequest}`);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
