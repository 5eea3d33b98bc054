/**
 * Branding in Chromium (issue 16 part 5): the pay page with each button style, a logo and a light
 * brand colour, at phone and desktop widths — readable, axe clean, nothing blocked by the CSP; and
 * the link form's live preview, beside the form on a desktop and behind "Preview" on a phone,
 * following what the merchant types (htmx) and working without JavaScript.
 */
import { expect } from 'chai';
import sharp from 'sharp';
import { DESKTOP, PHONE, servedMerchant, useBrowser, type ServedEnv } from './support/browser.ts';
import { axeProblems } from './support/axe.ts';
import { contrastRatio } from '../src/core/color.ts';
import type { Merchant } from '../src/features/merchants/index.ts';

/** "rgb(17, 24, 39)" → "#111827". */
const hex = (rgb: string) => `#${(rgb.match(/\d+/g) ?? []).slice(0, 3).map((n) => Number(n).toString(16).padStart(2, '0')).join('')}`;

describe('branding in a browser', function () {
  this.timeout(60_000);
  const browser = useBrowser();
  let env: ServedEnv;
  let merchant: Merchant;
  let handle: string;
  let storageState: Awaited<ReturnType<typeof servedMerchant>>['storageState'];
  const paths: Record<string, string> = {};

  before(async () => {
    ({ env, storageState, handle, merchant } = await servedMerchant(browser(), { name: 'Ferngully Coffee Roasters', handlePrefix: 'brandui' }));
    // A wordmark-like logo: a dark band with a brand-coloured block.
    const logo = await sharp({ create: { width: 900, height: 240, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .composite([
        { input: await sharp({ create: { width: 240, height: 240, channels: 4, background: '#0f766e' } }).png().toBuffer(), left: 0, top: 0 },
        { input: await sharp({ create: { width: 600, height: 120, channels: 4, background: '#1f2937' } }).png().toBuffer(), left: 280, top: 60 },
      ])
      .png()
      .toBuffer();
    merchant = await env.rt.services.branding.saveLook(merchant, { button_style: 'rounded', button_label: 'pay', logo: { bytes: logo, truncated: false } });
    for (const style of ['rounded', 'square', 'pill'] as const) {
      const l = await env.rt.services.links.create(merchant, { type: 'amount', name: `Beans, ${style} button`, description: 'Our monthly order, roasted on Monday.', amount: 3450, branding: { button_style: style, ...(style === 'pill' ? { button_label: 'buy' } : {}) } });
      paths[style] = l.path!;
    }
    const light = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Sunny day fund', amount: 1500, branding: { color: '#ffeb3b', button_label: 'donate', logo: 'none' } });
    paths.light = light.path!;
  });
  after(() => env?.close());

  for (const [label, viewport] of [['390', PHONE], ['1280', DESKTOP]] as const) {
    for (const style of ['rounded', 'square', 'pill', 'light']) {
      it(`shows the ${style} pay page at ${label} px: its logo, its button, readable text, axe clean`, async () => {
        const tab = await browser().newPage({ viewport });
        try {
          await tab.page.goto(`${env.origin}/${handle}/${paths[style]}`);
          const button = tab.page.locator('.pay-button');
          const css = await button.evaluate((el) => {
            const s = (globalThis as any).getComputedStyle(el);
            return { radius: parseFloat(s.borderTopLeftRadius), color: s.color, background: s.backgroundColor, height: el.getBoundingClientRect().height };
          });
          if (style === 'square') expect(css.radius).to.be.at.most(2);
          if (style === 'rounded') expect(css.radius).to.equal(10);
          if (style === 'pill') expect(css.radius).to.be.at.least(css.height / 2);
          expect(contrastRatio(hex(css.color), hex(css.background)), `${css.color} on ${css.background}`).to.be.at.least(4.5);
          if (style === 'light') {
            expect(await tab.page.locator('.merchant-logo').count(), 'logo: none').to.equal(0);
            expect(await button.textContent()).to.match(/^Donate €15\.00$/);
          } else {
            const logo = tab.page.locator('.pay-merchant .merchant-logo');
            expect(await logo.evaluate((img: any) => img.complete && img.naturalWidth > 0), 'the logo loaded').to.equal(true);
            expect(await logo.getAttribute('alt')).to.equal('Ferngully Coffee Roasters');
          }
          expect(await tab.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
          await tab.screenshot(`brand-pay-${style}-${label}`);
          expect(await axeProblems(tab.page)).to.deep.equal([]);
          tab.assertClean();
        } finally {
          await tab.close();
        }
      });
    }
  }

  it('uploads a logo from Settings → Payment page in the browser, and refuses a text file by the field', async () => {
    const tab = await browser().newPage({ viewport: DESKTOP, storageState });
    try {
      await tab.page.goto(`${env.origin}/app/settings#branding`);
      await tab.page.getByLabel('Logo', { exact: true }).setInputFiles({ name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('not an image at all') });
      tab.expectError({ status: 422, path: '/app/settings/branding' });
      await tab.page.getByRole('button', { name: 'Save payment page' }).click();
      await tab.page.locator('#f-logo-error', { hasText: 'PNG, JPEG or WebP' }).waitFor();
      await tab.page.getByLabel('Logo', { exact: true }).setInputFiles({ name: 'logo.png', mimeType: 'image/png', buffer: await sharp({ create: { width: 600, height: 200, channels: 3, background: '#7c2d12' } }).png().toBuffer() });
      await tab.page.getByLabel('Pill').check();
      await tab.page.getByRole('button', { name: 'Save payment page' }).click();
      await tab.page.getByText('Payment page look saved.').waitFor();
      const saved = (await env.rt.services.merchants.getByHandle(handle))!;
      expect(saved.buttonStyle).to.equal('pill');
      expect(saved.logoUrl).not.to.equal(merchant.logoUrl);
      await tab.page.locator('#branding').scrollIntoViewIfNeeded();
      await tab.screenshot('brand-settings-1280');
      expect(await axeProblems(tab.page)).to.deep.equal([]);
      tab.assertClean();
      // Back to what the other tests expect.
      merchant = await env.rt.services.branding.saveLook(saved, { button_style: 'rounded', button_label: 'pay' });
    } finally {
      await tab.close();
    }
  });

  it('puts the live preview beside the link form on a desktop and follows what the merchant types', async () => {
    const tab = await browser().newPage({ viewport: DESKTOP, storageState });
    try {
      await tab.page.goto(`${env.origin}/app/links/new?type=amount`);
      const frame = tab.page.frameLocator('iframe.pay-preview-frame');
      await frame.locator('h1').waitFor();
      const form = (await tab.page.locator('#link-form').boundingBox())!;
      const preview = (await tab.page.locator('.pay-preview-frame').boundingBox())!;
      expect(preview.x, 'beside the form').to.be.greaterThan(form.x + form.width - 1);
      expect(preview.width).to.be.at.least(360);
      await tab.page.getByLabel('Name', { exact: true }).fill('Coffee subscription');
      await tab.page.getByLabel('Amount', { exact: true }).fill('19.90');
      await tab.page.getByLabel('Button style').selectOption('pill');
      await tab.page.getByLabel('Button label').selectOption('book');
      await frame.locator('h1', { hasText: 'Coffee subscription' }).waitFor();
      await frame.locator('.pay-button', { hasText: 'Book €19.90' }).waitFor();
      expect(await frame.locator('body').getAttribute('class')).to.equal('btn-pill');
      expect(await frame.locator('.preview-banner').textContent()).to.include('takes no payments');
      // Clicking the preview's button goes nowhere: no request leaves the dashboard page.
      let posted = false;
      tab.page.on('request', (r) => {
        if (r.method() === 'POST' && !r.url().includes('/app/links/preview')) posted = true;
      });
      await frame.locator('.pay-button').click();
      expect(posted).to.equal(false);
      await tab.screenshot('brand-link-form-preview-1280');
      expect(await axeProblems(tab.page)).to.deep.equal([]);
      tab.assertClean();
      expect(await env.rt.services.links.hasAny(merchant.key), 'the preview saved nothing').to.equal(true); // the four from before()
      expect((await env.rt.services.links.search(merchant, { page: 1, perPage: 50 } as never)).items.map((l) => l.name)).not.to.include('Coffee subscription');
    } finally {
      await tab.close();
    }
  });

  it('previews an items link’s ticked products and what the checkout asks for, as the merchant picks them', async () => {
    await env.rt.services.products.create(merchant.key, { name: 'Ethiopia Yirgacheffe, 1 kg', price: 3450, currency: 'EUR' });
    await env.rt.services.products.create(merchant.key, { name: 'Enamel mug', price: 1200, currency: 'EUR' });
    const tab = await browser().newPage({ viewport: DESKTOP, storageState });
    try {
      await tab.page.goto(`${env.origin}/app/links/new?type=items`);
      const frame = tab.page.frameLocator('iframe.pay-preview-frame');
      await frame.locator('h1').waitFor();
      await tab.page.getByLabel('Name', { exact: true }).fill('Office coffee order');
      await tab.page.getByRole('checkbox', { name: /Ethiopia Yirgacheffe/ }).check();
      await frame.locator('.order-line, li, tr', { hasText: 'Ethiopia Yirgacheffe' }).first().waitFor();
      await tab.page.getByLabel('Phone number').selectOption('required');
      await frame.locator('input[name="phone"][required]').waitFor();
      expect(await frame.locator('body').textContent()).not.to.include('Enamel mug');
      await tab.screenshot('brand-link-form-items-preview-1280');
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('keeps the preview behind a “Preview” toggle on a phone', async () => {
    const tab = await browser().newPage({ viewport: PHONE, storageState });
    try {
      await tab.page.goto(`${env.origin}/app/links/new?type=amount`);
      expect(await tab.page.locator('.pay-preview-frame').isVisible(), 'closed at first').to.equal(false);
      await tab.screenshot('brand-link-form-390-closed');
      await tab.page.locator('summary', { hasText: 'Preview' }).click();
      const frame = tab.page.frameLocator('iframe.pay-preview-frame');
      await frame.locator('h1').waitFor();
      expect(await tab.page.locator('.pay-preview-frame').isVisible()).to.equal(true);
      expect(await tab.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).to.equal(true);
      await tab.screenshot('brand-link-form-390-open');
      expect(await axeProblems(tab.page)).to.deep.equal([]);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });

  it('updates the preview without JavaScript (posted into the frame)', async () => {
    const tab = await browser().newPage({ viewport: PHONE, storageState, javaScriptEnabled: false });
    try {
      await tab.page.goto(`${env.origin}/app/links/new?type=amount`);
      await tab.page.locator('summary', { hasText: 'Preview' }).click();
      await tab.page.getByLabel('Name', { exact: true }).fill('Typed without JS');
      await tab.page.getByRole('button', { name: 'Update preview' }).click();
      await tab.page.frameLocator('iframe.pay-preview-frame').locator('h1', { hasText: 'Typed without JS' }).waitFor();
      expect(tab.page.url(), 'the form page stays').to.match(/\/app\/links\/new\?type=amount$/);
      tab.assertClean();
    } finally {
      await tab.close();
    }
  });
});
