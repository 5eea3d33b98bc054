import { expect } from 'chai';
import { outboxMessages } from './support/channels.ts';
import { forEachTarget, TARGETS } from './support/targets.ts';
import { build, csrfFrom, signUp, uniqueHandle, type Account, type TestEnv } from './support/harness.ts';
import { waitFor } from './support/wait.ts';
import { serve, signUpInBrowser, useBrowser, type ServedEnv } from './support/browser.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';


/** The message shown under a template card's field ('' when none). */
function cardError(html: string, card: string, field: string): string {
  const m = new RegExp(`<p class="error" id="${card}-${field}-error"[^>]*>([^<]*)</p>`).exec(html);
  if (!m) throw new Error(`no error slot for ${card} ${field}`);
  return m[1].trim();
}

forEachTarget('settings: message templates', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
  });
  after(() => env?.close());

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const save = (acct: Account, fields: Record<string, string>) => acct.agent.post('/app/settings/templates').type('form').send({ _csrf: acct.csrf, ...fields });

  /** Sends a new link to a customer through the form and returns the outbox messages for it. */
  async function sendLink(acct: Account, name: string, channels: string[]) {
    const m = await merchantOf(acct);
    const c = await env.rt.services.customers.create(m.key, { name: 'Jane Doe', email: `jane-${name.toLowerCase().replace(/\W+/g, '')}@example.test`, phone: '+31 6 12345678' });
    await acct.agent
      .post('/app/links')
      .type('form')
      .send({ _csrf: acct.csrf, type: 'amount', name, amount: '39.00', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on', customer_id: c.id, channels })
      .expect(303);
    await env.rt.jobs.drain();
    return (await outboxMessages(env)).filter((msg) => msg.text.includes(name) || msg.subject?.includes(name));
  }

  it('lists the six templates with the placeholders, and links to them from Settings', async () => {
    const acct = await signUp(env.app);
    const page = await acct.agent.get('/app/settings/templates').expect(200);
    for (const kind of ['initial', 'reminder']) for (const channel of ['email', 'sms', 'whatsapp']) expect(page.text).to.include(`id="tpl-${kind}-${channel}"`);
    expect(page.text).to.include('{{first_name}}').and.include('{{reminder_number}}');
    expect(page.text).to.not.include('Reset to default');
    expect((await acct.agent.get('/app/settings').expect(200)).text).to.include('href="/app/settings/templates"');
  });

  it('uses a saved template for the next send, and goes back to the default on reset', async () => {
    const acct = await signUp(env.app, { name: 'Acme Yoga' });
    await save(acct, { kind: 'initial', channel: 'sms', body: 'Hello {{name}}! {{business}} asks {{amount}} for {{link_name}}: {{url}}' }).expect(303);
    await save(acct, { kind: 'initial', channel: 'email', subject: 'Pay {{link_name}}, {{first_name}}', body: 'Dear {{first_name}},\n\nPlease pay.' }).expect(303);
    const page = await acct.agent.get('/app/settings/templates').expect(200);
    expect(page.text).to.include('Reset to default');

    const custom = await sendLink(acct, 'Spring membership', ['email', 'sms']);
    expect(custom.find((m) => m.channel === 'sms')!.text).to.match(/^Hello Jane Doe! Acme Yoga asks €39\.00 for Spring membership: http/);
    const email = custom.find((m) => m.channel === 'email')!;
    expect(email.subject).to.equal('Pay Spring membership, Jane');
    expect(email.text).to.include('Dear Jane,');

    await acct.agent.post('/app/settings/templates/reset').type('form').send({ _csrf: acct.csrf, kind: 'initial', channel: 'sms' }).expect(303);
    const back = await sendLink(acct, 'Autumn class', ['sms']);
    expect(back[0].text).to.match(/^Hi Jane, your Acme Yoga payment link for Autumn class \(€39\.00\): http/);
    // The email template is still theirs.
    const m = await merchantOf(acct);
    expect((await env.rt.services.templates.all(m.key)).filter((t) => t.custom).map((t) => `${t.kind}:${t.channel}`)).to.deep.equal(['initial:email']);
  });

  it('refuses a subject with a line break, an unknown placeholder and an empty message, by the field', async () => {
    const acct = await signUp(env.app);
    const m = await merchantOf(acct);
    const crlf = await save(acct, { kind: 'reminder', channel: 'email', subject: 'Hi\r\nBcc: evil@example.test', body: 'Pay please.' }).expect(422);
    expect(cardError(crlf.text, 'tpl-reminder-email', 'subject')).to.not.equal('');
    expect(crlf.text).to.include('value="Hi');
    const unknown = await save(acct, { kind: 'initial', channel: 'whatsapp', body: 'Hi {{nickname}}, pay {{url}}' }).expect(422);
    expect(cardError(unknown.text, 'tpl-initial-whatsapp', 'body')).to.include('{{first_name}}');
    expect(unknown.text).to.include('Hi {{nickname}}, pay {{url}}');
    const empty = await save(acct, { kind: 'initial', channel: 'sms', body: '   ' }).expect(422);
    expect(cardError(empty.text, 'tpl-initial-sms', 'body')).to.not.equal('');
    const long = await save(acct, { kind: 'initial', channel: 'sms', body: 'x'.repeat(641) }).expect(422);
    expect(cardError(long.text, 'tpl-initial-sms', 'body')).to.not.equal('');
    expect(await env.rt.services.templates.all(m.key)).to.satisfy((all: { custom: boolean }[]) => all.every((t) => !t.custom));
  });

  it('previews the text filled with sample values as the merchant types, without saving', async () => {
    const acct = await signUp(env.app, { name: 'Acme Yoga' });
    const sms = await acct.agent
      .post('/app/settings/templates/preview')
      .set('HX-Request', 'true')
      .type('form')
      .send({ _csrf: acct.csrf, kind: 'reminder', channel: 'sms', body: 'Reminder {{reminder_number}} for {{first_name}}: {{link_name}}, {{amount}}' })
      .expect(200);
    expect(sms.text).to.match(/^<div class="preview" id="tpl-reminder-sms-preview"/);
    expect(sms.text).to.include(`Reminder 1 for Jane: Spring membership, €39.00 http://pay.test/${acct.handle}/spring-membership`);
    const bad = await acct.agent.post('/app/settings/templates/preview').set('HX-Request', 'true').type('form').send({ _csrf: acct.csrf, kind: 'initial', channel: 'sms', body: '{{oops}}' }).expect(200);
    expect(bad.text).to.include('Unknown placeholder');
    const email = await acct.agent
      .post('/app/settings/templates/preview')
      .set('HX-Request', 'true')
      .type('form')
      .send({ _csrf: acct.csrf, kind: 'initial', channel: 'email', subject: '{{business}} & {{name}}', body: 'Hi {{first_name}}' })
      .expect(200);
    expect(email.text).to.include('Acme Yoga &amp; Jane Doe');
    const src = /<iframe[^>]* sandbox src="([^"]+)"/.exec(email.text)![1].replace(/&amp;/g, '&');
    const frame = await acct.agent.get(src).expect(200);
    expect(frame.headers['content-security-policy']).to.include("frame-ancestors 'self'").and.include("default-src 'none'");
    expect(frame.text).to.include('Hi Jane').and.include('Pay €39.00').and.include('Acme Yoga');
    // A preview never saves.
    expect((await env.rt.services.templates.all((await merchantOf(acct)).key)).every((t) => !t.custom)).to.equal(true);
    // Without JavaScript the Preview button shows the page with the card as typed.
    const page = await acct.agent.post('/app/settings/templates/preview').type('form').send({ _csrf: acct.csrf, kind: 'initial', channel: 'sms', body: 'Yo {{first_name}} {{url}}' }).expect(200);
    expect(page.text).to.include('Yo Jane http://pay.test/');
  });

  it('is for signed-in merchants only, and refuses a post without the CSRF token', async () => {
    const acct = await signUp(env.app);
    const res = await acct.agent.get('/app/settings/templates');
    expect(csrfFrom(res.text)).to.be.a('string');
    await acct.agent.post('/app/settings/templates').type('form').send({ kind: 'initial', channel: 'sms', body: 'x {{url}}' }).expect(403);
    const anon = await (await import('supertest')).default(env.app).get('/app/settings/templates');
    expect(anon.status).to.be.oneOf([302, 303]);
  });
});

describe('message templates in the browser', function () {
  this.timeout(60_000);
  const browser = useBrowser();
  let env: ServedEnv;
  before(async () => {
    env = await serve(TARGETS[0]);
  });
  after(() => env?.close());

  it('updates the preview as the merchant types, and shows the email in its frame without CSP errors', async () => {
    const tracked = await browser().newPage();
    const { page } = tracked;
    await signUpInBrowser(page, env.origin, { name: 'Acme Yoga', handle: uniqueHandle('yoga') });
    await page.goto(`${env.origin}/app/settings/templates`);
    const frame = page.frameLocator('#tpl-initial-email-preview iframe');
    await frame.locator('text=Pay €').first().waitFor();
    await page.locator('#tpl-initial-sms-body').fill('Hey {{first_name}}, {{link_name}} is {{amount}}: {{url}}');
    await page.locator('#tpl-initial-sms-preview', { hasText: 'Hey Jane, Spring membership is' }).waitFor();
    await page.locator('#tpl-initial-email-body').fill('Dear {{first_name}},\n\nYour spot is waiting.');
    await page.frameLocator('#tpl-initial-email-preview iframe').locator('text=Your spot is waiting.').waitFor();
    await page.frameLocator('#tpl-reminder-email-preview iframe').locator('text=friendly reminder').waitFor();
    await tracked.screenshot('message-templates');
    await page.locator('#tpl-initial-sms').getByRole('button', { name: 'Save' }).click();
    await page.locator('#tpl-initial-sms .badge', { hasText: 'Your text' }).waitFor();
    tracked.assertClean();
    await tracked.close();
  });

  // The preview runs 400 ms after the last keystroke: a Save clicked sooner is in flight when it
  // starts, and a preview slower than the save answers after the page changed. Neither may cost the save.
  for (const slow of ['save', 'preview'] as const) {
    it(`keeps the “saved” message when the live preview runs during the save (slow ${slow})`, async () => {
      const tracked = await browser().newPage();
      const { page } = tracked;
      await signUpInBrowser(page, env.origin, { name: 'Acme Yoga', handle: uniqueHandle('yoga') });
      await page.goto(`${env.origin}/app/settings/templates`);
      await page.locator('#tpl-initial-sms-preview', { hasText: 'Jane' }).waitFor();
      const path = slow === 'save' ? '/app/settings/templates' : '/app/settings/templates/preview';
      let previews = 0;
      await page.route((url) => url.pathname === path || url.pathname === '/app/settings/templates/preview', async (route) => {
        const at = new URL(route.request().url()).pathname;
        if (at === '/app/settings/templates/preview') previews++;
        if (at === path && route.request().method() === 'POST') await new Promise((r) => setTimeout(r, 1_200));
        await route.continue();
      });
      if (slow === 'preview') {
        // A preview in flight when Save is clicked.
        await page.locator('#tpl-initial-sms-body').fill('Hi {{first_name}}, pay here: {{url}}');
        await waitFor(() => previews > 0, { message: 'the preview to start' });
      } else {
        await page.locator('#tpl-initial-sms-body').fill('Hello {{first_name}}, pay here: {{url}}');
      }
      await page.locator('#tpl-initial-sms').getByRole('button', { name: 'Save' }).click();
      await page.locator('#flash', { hasText: 'saved' }).waitFor();
      await page.locator('#tpl-initial-sms .badge', { hasText: 'Your text' }).waitFor();
      // Whatever the preview answered late changed nothing.
      await new Promise((r) => setTimeout(r, 1_500));
      expect(await page.locator('#flash').textContent()).to.include('saved');
      expect(previews).to.be.greaterThan(0);
      tracked.assertClean();
      await tracked.close();
    });
  }

  for (const [width, height] of [[390, 844], [1280, 900]]) {
    it(`edits the receipt email with a live preview and turns receipts off and on (${width} px)`, async () => {
      const tracked = await browser().newPage({ viewport: { width, height } });
      const { page } = tracked;
      await signUpInBrowser(page, env.origin, { name: 'Acme Yoga', handle: uniqueHandle('yoga') });
      await page.goto(`${env.origin}/app/settings/templates#receipts`);
      const frame = page.frameLocator('#tpl-receipt-email-preview iframe');
      await frame.locator('text=View your receipt').waitFor();
      await page.locator('#tpl-receipt-email-body').fill('Thank you, {{first_name}}! We received {{amount}}.');
      await frame.locator('text=Thank you, Jane! We received').waitFor();
      await page.locator('#receipts').scrollIntoViewIfNeeded();
      await tracked.screenshot(`message-templates-receipt-${width}`);
      await page.screenshot({ path: `/tmp/paylink-shots/message-templates-receipt-${width}-view.png`, caret: 'initial' });
      const toggle = page.getByLabel('Email customers a receipt after they pay');
      expect(await toggle.isChecked()).to.equal(true);
      await toggle.uncheck();
      await page.locator('.receipts-form').getByRole('button', { name: 'Save' }).click();
      await page.getByText('Receipts are off').first().waitFor();
      expect(await page.getByLabel('Email customers a receipt after they pay').isChecked()).to.equal(false);
      await page.getByLabel('Email customers a receipt after they pay').check();
      await page.locator('.receipts-form').getByRole('button', { name: 'Save' }).click();
      await page.getByText('Customers get a receipt by email').first().waitFor();
      tracked.assertClean();
      await tracked.close();
    });
  }
});
