/**
 * QR codes of links: the PNG and the SVG decode (zbarimg) to exactly the link's public URL, the PNG
 * is exactly the size asked for, bad sizes are 422, and only the owner's live links have one.
 * The SVG is rasterised by headless Chromium before decoding, as a browser or print tool would.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { waitFor } from './support/wait.ts';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type Account, type TestEnv } from './support/harness.ts';
import { servedMerchant, useBrowser, type ServedEnv, type TrackedPage } from './support/browser.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import type { Link } from '../src/features/links/service.ts';
import { layout, qrPng } from '../src/features/qr/qr.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-qr-'));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

let fileNo = 0;
/** What zbarimg reads from a PNG: the one symbol's text, exactly (no trailing newline). */
async function decode(png: Buffer): Promise<string> {
  const file = path.join(TMP, `qr-${++fileNo}.png`);
  fs.writeFileSync(file, png);
  const { stdout } = await run('zbarimg', ['--quiet', '--raw', file]);
  return stdout.replace(/\n$/, '');
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8).toString('latin1')).to.equal('\x89PNG\r\n\x1a\n');
  expect(png.subarray(12, 16).toString('latin1')).to.equal('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/** Binary bodies (image/png and image/svg+xml) as a Buffer. */
function binary(res: supertest.Response, cb: (err: Error | null, body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
}

describe('QR renderer', () => {
  it('draws whole-pixel modules with the full quiet zone whenever they fit, and still exactly size×size when they do not', async () => {
    expect(layout(25, 200)).to.deep.equal({ scale: 6, offset: 25 });
    const long = `https://pay.example.com/${'a'.repeat(400)}`; // a large symbol: fractional modules at 100 px
    const png = qrPng(long, 100);
    expect(pngSize(png)).to.deep.equal({ width: 100, height: 100 });
    expect(await decode(qrPng(long, 300))).to.equal(long);
  });
});

forEachTarget('link QR codes', (target) => {
  let env: TestEnv;
  let acct: Account;
  let merchant: Merchant;
  let link: Link;
  let url: string;
  let key: string;
  const browser = useBrowser();

  before(async () => {
    env = await build(target);
    acct = await signUp(env.app, { name: 'Corner Bakery' });
    merchant = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Summer Sale', amount: 1250 });
    url = `${env.config.baseUrl}/${acct.handle}/${link.path}`;
    key = (await env.rt.services.apiKeys.create(merchant, { name: 'qr tests' })).secret;
  });
  after(() => env?.close());

  const api = (p: string) => supertest(env.app).get(`/api/v1${p}`).set('Authorization', `Bearer ${key}`).buffer(true).parse(binary);

  /** Rasterises an SVG in Chromium at 400×400 CSS px on white and decodes the screenshot. */
  async function decodeSvg(svg: Buffer): Promise<string> {
    const tracked = await browser().newPage({ viewport: { width: 480, height: 480 } });
    try {
      const src = `data:image/svg+xml;base64,${svg.toString('base64')}`;
      await tracked.page.setContent(`<!doctype html><html><head><link rel="icon" href="data:,"></head><body style="margin:20px;background:#fff"><img id="qr" alt="" width="400" height="400" src="${src}"></body></html>`);
      // page.evaluate, not waitForFunction's string predicate, which the page's CSP (no 'unsafe-eval') refuses.
      await waitFor(() => tracked.page.evaluate<boolean>('Boolean(document.getElementById("qr")?.complete && document.getElementById("qr").naturalWidth > 0)'), { timeout: 10_000, message: 'the QR image to load' });
      return await decode(await tracked.page.locator('#qr').screenshot());
    } finally {
      await tracked.close();
    }
  }

  describe('API', () => {
    it('GET /links/:id/qr.png is a 200×200 PNG of exactly the link’s URL', async () => {
      expect(url).to.match(/^http:\/\/pay\.test\/shop-[\w-]+\/summer-sale$/);
      const res = await api(`/links/${link.id}/qr.png`).expect(200);
      expect(res.headers['content-type']).to.equal('image/png');
      expect(res.headers['cache-control']).to.match(/^private\b/);
      expect(res.headers.etag).to.match(/^"qr-[\w-]+"$/);
      expect(res.headers['content-disposition']).to.equal(undefined);
      expect(pngSize(res.body)).to.deep.equal({ width: 200, height: 200 });
      expect(await decode(res.body)).to.equal(url);
    });

    it('?size=1000 is 1000×1000; 100 and 2000 are the bounds', async () => {
      const big = await api(`/links/${link.id}/qr.png?size=1000`).expect(200);
      expect(pngSize(big.body)).to.deep.equal({ width: 1000, height: 1000 });
      expect(await decode(big.body)).to.equal(url);
      for (const size of [100, 2000]) {
        const res = await api(`/links/${link.id}/qr.png?size=${size}`).expect(200);
        expect(pngSize(res.body)).to.deep.equal({ width: size, height: size });
        expect(await decode(res.body)).to.equal(url);
      }
    });

    it('answers 422 problem+json (field size) for sizes out of range or not whole numbers', async () => {
      for (const size of ['99', '2001', 'abc', '', '1.5', '-200', '0200x', '1e3']) {
        const res = await supertest(env.app)
          .get(`/api/v1/links/${link.id}/qr.png?size=${encodeURIComponent(size)}`)
          .set('Authorization', `Bearer ${key}`)
          .expect(422);
        expect(res.headers['content-type'], `size=${size}`).to.match(/^application\/problem\+json/);
        expect(res.body.errors.map((e: { field: string }) => e.field), `size=${size}`).to.deep.equal(['size']);
      }
      const twice = await supertest(env.app).get(`/api/v1/links/${link.id}/qr.png?size=200&size=300`).set('Authorization', `Bearer ${key}`).expect(422);
      expect(twice.body.errors[0].field).to.equal('size');
    });

    it('GET /links/:id/qr.svg is an SVG of exactly the link’s URL', async () => {
      const res = await api(`/links/${link.id}/qr.svg`).expect(200);
      expect(res.headers['content-type']).to.match(/^image\/svg\+xml/);
      expect(res.body).to.be.instanceOf(Buffer);
      const svg = res.body.toString('utf8');
      expect(svg).to.match(/^<svg [^>]*viewBox="0 0 \d+ \d+"/);
      expect(svg).not.to.match(/<script|on\w+=/i);
      expect(await decodeSvg(res.body)).to.equal(url);
    });

    it('?download=1 names the file; If-None-Match answers 304', async () => {
      const png = await api(`/links/${link.id}/qr.png?download=1`).expect(200);
      expect(png.headers['content-disposition']).to.equal(`attachment; filename="${acct.handle}-summer-sale-qr.png"`);
      expect(png.headers['content-type']).to.equal('image/png');
      const big = await api(`/links/${link.id}/qr.png?size=1000&download=1`).expect(200);
      expect(big.headers['content-disposition']).to.equal(`attachment; filename="${acct.handle}-summer-sale-qr-1000.png"`);
      const svg = await api(`/links/${link.id}/qr.svg?download=1`).expect(200);
      expect(svg.headers['content-disposition']).to.equal(`attachment; filename="${acct.handle}-summer-sale-qr.svg"`);
      expect(svg.headers['content-type']).to.match(/^image\/svg\+xml/);

      const first = await api(`/links/${link.id}/qr.png`).expect(200);
      await api(`/links/${link.id}/qr.png`).set('If-None-Match', first.headers.etag).expect(304);
      const other = await api(`/links/${link.id}/qr.png?size=300`).expect(200);
      expect(other.headers.etag).not.to.equal(first.headers.etag);
    });

    it('follows the link’s path: a new path is a new image and a new ETag', async () => {
      const l = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Old Name', amount: 500 });
      const before = await api(`/links/${l.id}/qr.png`).expect(200);
      await env.rt.services.links.update(merchant, l.id, { path: 'new-path' });
      const after = await api(`/links/${l.id}/qr.png`).set('If-None-Match', before.headers.etag).expect(200);
      expect(after.headers.etag).not.to.equal(before.headers.etag);
      expect(await decode(after.body)).to.equal(`${env.config.baseUrl}/${acct.handle}/new-path`);
    });

    it('404s for another merchant’s link, a deleted link and an unknown id; 401 without a key', async () => {
      const other = await signUp(env.app);
      const otherMerchant = (await env.rt.services.merchants.getByHandle(other.handle))!;
      const theirs = await env.rt.services.links.create(otherMerchant, { type: 'amount', name: 'Their Sale', amount: 900 });
      for (const ext of ['png', 'svg']) {
        const res = await supertest(env.app).get(`/api/v1/links/${theirs.id}/qr.${ext}`).set('Authorization', `Bearer ${key}`).expect(404);
        expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
      }
      const gone = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Gone Soon', amount: 300 });
      await env.rt.services.links.remove(merchant, gone.id);
      await supertest(env.app).get(`/api/v1/links/${gone.id}/qr.png`).set('Authorization', `Bearer ${key}`).expect(404);
      await supertest(env.app).get(`/api/v1/links/${gone.id}/qr.svg`).set('Authorization', `Bearer ${key}`).expect(404);
      await supertest(env.app).get('/api/v1/links/lnk_nope/qr.png').set('Authorization', `Bearer ${key}`).expect(404);

      const anon = await supertest(env.app).get(`/api/v1/links/${link.id}/qr.png`).expect(401);
      expect(anon.headers['content-type']).to.match(/^application\/problem\+json/);
      await supertest(env.app).get(`/api/v1/links/${link.id}/qr.svg`).expect(401);
    });
  });

  describe('dashboard', () => {
    it('serves the logged-in merchant’s PNG (any allowed size) and SVG, with download names', async () => {
      const png = await acct.agent.get(`/app/links/${link.id}/qr.png`).buffer(true).parse(binary).expect(200);
      expect(png.headers['content-type']).to.equal('image/png');
      expect(png.headers['cache-control']).to.match(/^private\b/);
      expect(pngSize(png.body)).to.deep.equal({ width: 200, height: 200 });
      expect(await decode(png.body)).to.equal(url);

      const big = await acct.agent.get(`/app/links/${link.id}/qr.png?size=1000&download=1`).buffer(true).parse(binary).expect(200);
      expect(pngSize(big.body)).to.deep.equal({ width: 1000, height: 1000 });
      expect(big.headers['content-disposition']).to.equal(`attachment; filename="${acct.handle}-summer-sale-qr-1000.png"`);
      expect(await decode(big.body)).to.equal(url);

      const svg = await acct.agent.get(`/app/links/${link.id}/qr.svg?download=1`).buffer(true).parse(binary).expect(200);
      expect(svg.headers['content-type']).to.match(/^image\/svg\+xml/);
      expect(svg.headers['content-disposition']).to.equal(`attachment; filename="${acct.handle}-summer-sale-qr.svg"`);
      expect(await decodeSvg(svg.body)).to.equal(url);
    });

    it('answers 422 for a bad size, 404 for another merchant’s or a deleted link, and sends strangers to log in', async () => {
      for (const size of ['99', '2001', 'abc']) {
        const res = await acct.agent.get(`/app/links/${link.id}/qr.png?size=${size}`).expect(422);
        expect(res.text).to.include('100 to 2000');
      }
      const other = await signUp(env.app);
      await other.agent.get(`/app/links/${link.id}/qr.png`).expect(404);
      await other.agent.get(`/app/links/${link.id}/qr.svg`).expect(404);
      const gone = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Also Gone', amount: 300 });
      await env.rt.services.links.remove(merchant, gone.id);
      await acct.agent.get(`/app/links/${gone.id}/qr.png`).expect(404);

      const anon = await supertest(env.app).get(`/app/links/${link.id}/qr.png`).expect(303);
      expect(anon.headers.location).to.equal(`/login?next=${encodeURIComponent(`/app/links/${link.id}/qr.png`)}`);
      expect(anon.headers['content-type'] ?? '').not.to.match(/^image\//);
    });
  });
});

// The QR download buttons in Chromium with JavaScript on: the body is boosted by htmx, which must
// leave a download to the browser (else the dashboard is replaced by the image's bytes).
describe('QR downloads in a browser', () => {
  const browser = useBrowser();
  let env: ServedEnv;
  let storageState: Awaited<ReturnType<TrackedPage['context']['storageState']>>;
  let pages: { name: string; path: string; stem: RegExp }[];

  before(async function () {
    this.timeout(30_000);
    let m: Merchant;
    let handle: string;
    ({ env, storageState, handle, merchant: m } = await servedMerchant(browser(), { name: 'Corner Bakery', handlePrefix: 'qrdl' }));
    const link = await env.rt.services.links.create(m, { type: 'amount', name: 'Summer Sale', amount: 1250 });
    const request = await env.rt.services.requests.create(m, { amount: 4500, currency: 'EUR', customer: { name: 'Cy', email: 'cy@example.test' } }, { source: 'api' });
    pages = [
      { name: 'link', path: `/app/links/${link.id}`, stem: new RegExp(`^${handle}-summer-sale-qr`) },
      { name: 'payment request', path: `/app/requests/${request.id}`, stem: /-qr/ },
    ];
  });
  after(() => env?.close());

  for (const which of ['link', 'payment request']) {
    for (const [button, ext] of [['Download PNG', 'png'], ['Download SVG', 'svg']] as const) {
      it(`“${button}” on a ${which}’s page downloads the file and leaves the page as it was`, async () => {
        const { path: at, stem } = pages.find((p) => p.name === which)!;
        const tab = await browser().newPage({ storageState, acceptDownloads: true });
        try {
          const { page } = tab;
          await page.goto(`${env.origin}${at}`);
          await page.evaluate('new Promise((r) => (window.htmx ? r() : document.addEventListener("htmx:load", () => r(), { once: true })))');
          const heading = await page.getByRole('heading', { level: 1 }).textContent();
          const [download] = await Promise.all([page.waitForEvent('download', { timeout: 5_000 }), page.getByRole('link', { name: button }).click()]);
          expect(download.suggestedFilename()).to.match(stem).and.match(new RegExp(`\\.${ext}$`));
          const file = await download.path();
          const bytes = fs.readFileSync(file);
          if (ext === 'png') expect(pngSize(bytes).width).to.equal(1000);
          else expect(bytes.toString('utf8')).to.match(/^<svg /);
          // Still the same page: no swap of the body with the image.
          expect(page.url()).to.equal(`${env.origin}${at}`);
          expect(await page.getByRole('heading', { level: 1 }).textContent()).to.equal(heading);
          tab.assertClean();
        } finally {
          await tab.close();
        }
      });
    }
  }

  it('every download link in the views opts out of htmx’s boost', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.eta')) {
          for (const tag of fs.readFileSync(p, 'utf8').match(/<a\b(?:<%[\s\S]*?%>|[^>])*>/g) ?? []) {
            if (/\sdownload(\s|>|=)/.test(tag) && !/hx-boost="false"/.test(tag)) offenders.push(`${path.relative(ROOT, p)}: ${tag}`);
          }
        }
      }
    };
    walk(path.join(ROOT, 'views'));
    walk(path.join(ROOT, 'plugins'));
    expect(offenders).to.deep.equal([]);
  });
});
