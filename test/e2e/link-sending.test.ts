// Sending a link from its page in a real browser (issue 5, items 3–5): the merchant finds a customer
// as they type, sees which channels can reach them, sends with reminders; the messages appear on the
// page and turn "Kept in the Outbox" (no real channel in tests) without a reload when the outbox has
// taken them; Resend and Stop reminders
// swap their cards; the Reminders tab lists what is to come. No console errors, no CSP violations.
import { expect } from 'chai';
import { forEachTarget } from '../support/targets.ts';
import { uniqueHandle } from '../support/harness.ts';
import { PHONE, serve, signUpInBrowser, useBrowser, type ServedEnv } from '../support/browser.ts';
import type { Link } from '../../src/features/links/service.ts';
import { waitFor } from '../support/wait.ts';

forEachTarget('e2e: sending a link from its page', (target) => {
  const browser = useBrowser();
  let env: ServedEnv;

  before(async function () {
    this.timeout(30_000);
    env = await serve(target);
  });
  after(() => env?.close());

  it('sends to a customer with reminders, shows the messages going out, resends and stops reminders', async function () {
    this.timeout(60_000);
    const tab = await browser().newPage();
    try {
      const m = tab.page;
      const handle = uniqueHandle('send');
      await signUpInBrowser(m, env.origin, { name: 'Acme Yoga', handle });
      const merchant = (await env.rt.services.merchants.getByHandle(handle))!;
      const { customers } = env.rt.services;
      await customers.create(merchant.key, { name: 'Jane Doe', email: 'jane@example.test', phone: '+31 6 12345678', tags: ['Members'] });
      await customers.create(merchant.key, { name: 'Bo Berg', email: 'bo@example.test', tags: ['Members'] });
      await customers.create(merchant.key, { name: 'Ana López', email: 'ana@example.test', phone: '+34 612 345 678' });
      const link: Link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Spring membership', amount: 3900 });

      const streams = env.rt.live.streamCount;
      await m.goto(`${env.origin}/app/links/${link.id}`);
      await waitFor(() => env.rt.live.streamCount > streams, { message: 'the link page to open its live stream' });
      await m.evaluate('window.stayed = true');

      const panel = m.locator('#link-send');
      const channel = (label: string) => panel.locator('#send-channels').getByRole('checkbox', { name: label });
      // Search as you type: only Bo, who has no phone — SMS and WhatsApp cannot reach him.
      await panel.getByRole('searchbox', { name: 'Customers' }).fill('bo');
      await panel.locator('#send-customers').getByText('Ana López').waitFor({ state: 'detached' });
      await panel.getByRole('checkbox', { name: /Bo Berg/ }).check();
      await panel.locator('#channel-option-sms').getByText('No phone number').waitFor();
      expect(await channel('SMS').isDisabled()).to.equal(true);
      expect(await channel('Email').isDisabled()).to.equal(false);
      await tab.screenshot('link-send-one-customer');

      // Change of mind: Jane instead (Bo's choice survives the search until unticked).
      await panel.getByRole('searchbox', { name: 'Customers' }).fill('jane');
      await panel.getByRole('checkbox', { name: /Jane Doe/ }).waitFor();
      expect(await panel.getByRole('checkbox', { name: /Bo Berg/ }).isChecked()).to.equal(true);
      await panel.getByRole('checkbox', { name: /Bo Berg/ }).uncheck();
      await panel.getByRole('checkbox', { name: /Jane Doe/ }).check();
      await panel.locator('#channel-option-sms').getByText('No phone number').waitFor({ state: 'detached' });
      await channel('SMS').check();
      await panel.getByLabel('Remind them').selectOption('every_2_days');
      await panel.getByLabel('At most').fill('5');
      await panel.getByRole('button', { name: 'Send link' }).click();
      await panel.getByText('Kept in the Outbox (no email server configured, no SMS provider configured): nothing went to Jane Doe, and their reminders will stay there too.').waitFor();
      expect(await panel.getByRole('link', { name: 'How to send for real' }).getAttribute('href')).to.equal('/app/p/channel-outbox#configure');

      const card = m.locator('#link-deliveries');
      await expect(await card.locator('tbody tr').count()).to.equal(2);
      await card.getByText('Queued').first().waitFor();
      // The outbox keeps them: the card says so by itself.
      await env.rt.jobs.drain();
      await card.locator('tbody tr .badge', { hasText: 'Kept in the Outbox' }).nth(1).waitFor();
      expect(await card.getByText('Queued').count()).to.equal(0);
      const reminders = m.locator('#link-reminders');
      await reminders.getByText('0 of 5 sent').waitFor();
      await reminders.getByText('Active').waitFor();

      // Everyone with the tag "Members" too (Bo has no phone: he gets email only).
      await panel.getByLabel('Or everyone with a customer tag').selectOption({ label: 'Members' });
      await panel.getByRole('button', { name: 'Send link' }).click();
      await panel.getByText('nothing went to 2 customers, and their reminders will stay there too.').waitFor();
      await env.rt.jobs.drain();
      await card.locator('tbody tr').nth(4).waitFor();
      await m.locator('#link-deliveries tbody tr .badge', { hasText: 'Queued' }).first().waitFor({ state: 'detached' });
      await tab.screenshot('link-send-sent');

      // Resend the first message.
      await card.getByRole('button', { name: 'Resend to Jane Doe by SMS' }).first().click();
      await card.getByText('Sending again to Jane Doe (+31 6 12345678).').waitFor();
      await env.rt.jobs.drain();
      await card.locator('.flash').waitFor({ state: 'detached' });

      // Stop Bo's reminders.
      await reminders.getByRole('button', { name: 'Stop reminders to Bo Berg' }).click();
      await reminders.getByText('Reminders to Bo Berg stopped.').waitFor();
      await reminders.locator('tr', { hasText: 'Bo Berg' }).getByText('Stopped by you').waitFor();

      // The Reminders tab: what is to come, soonest first.
      await m.locator('#activity-tab-reminders').click();
      await m.locator('#reminders-upcoming').waitFor();
      expect(await m.locator('#link-activity tr.reminder-upcoming').count()).to.be.greaterThan(3);
      expect(await m.locator('#link-activity tr.reminder-upcoming').first().locator('td').nth(1).innerText()).to.equal('Reminder 1 of 5');
      expect(await m.evaluate('window.stayed')).to.equal(true);
      await tab.screenshot('link-send-reminders-tab');

      await m.setViewportSize(PHONE);
      await tab.screenshot('link-send-phone');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
  it('“Sent and upcoming →” on the reminders card opens the Reminders tab in view, on a phone too', async function () {
    this.timeout(30_000);
    const tab = await browser().newPage({ viewport: PHONE });
    try {
      const m = tab.page;
      const handle = uniqueHandle('tabs');
      await signUpInBrowser(m, env.origin, { name: 'Acme Yoga', handle });
      const merchant = (await env.rt.services.merchants.getByHandle(handle))!;
      const jane = await env.rt.services.customers.create(merchant.key, { name: 'Jane Doe', email: 'jane@example.test' });
      const link: Link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Spring membership', amount: 3900 });
      await env.rt.services.sending.send(merchant, link, { customer_id: jane.id, channels: ['email'], reminders: { frequency: 'daily', max: 3 } });
      await env.rt.jobs.drain();
      for (const js of [true, false]) {
        const t = js ? tab : await browser().newPage({ viewport: PHONE, javaScriptEnabled: false, storageState: await tab.context.storageState() });
        try {
          await t.page.goto(`${env.origin}/app/links/${link.id}`);
          await t.page.getByRole('link', { name: 'Sent and upcoming →' }).click();
          await t.page.locator('#reminders-upcoming').waitFor();
          expect(await t.page.locator('#activity-tab-reminders').getAttribute('aria-selected'), `js ${js}`).to.equal('true');
          // The Activity panel with its tabs starts at the top of the window, not the page's top.
          await waitFor(async () => Math.abs(Number(await t.page.evaluate(`document.getElementById('link-activity').getBoundingClientRect().top`))) < 2, { message: `the Activity panel at the top of the window (js ${js})` });
          expect(Number(await t.page.evaluate('window.scrollY')), `js ${js}`).to.be.greaterThan(300);
          await t.screenshot(`link-reminders-tab-from-card-${js ? 'js' : 'nojs'}`);
          t.assertClean();
        } finally {
          if (!js) await t.close();
        }
      }
    } finally {
      await tab.close();
    }
  });
});
