// Branding (issue 16 part 5): logo upload judged by content and re-encoded, button style and label,
// per-link overrides (form and API), readable button text on any colour, the cached pay page
// following every change, and the link form's live preview (read-only, merchant-scoped, CSRF-safe).
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { expect } from 'chai';
import sharp from 'sharp';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, csrfFrom, fieldError, signUp, type Account, type TestEnv } from './support/harness.ts';
import { apiClient } from './support/api.ts';
import { contrastRatio, inkOnWhite, textOn } from '../src/core/color.ts';
import { sniffImage } from '../src/features/branding/logo.ts';

/** A PNG of `w`×`h` in one colour (with alpha). */
const png = (w = 1200, h = 400, color = '#0f766e') => sharp({ create: { width: w, height: h, channels: 4, background: color } }).png().toBuffer();

/** `image` with a tEXt chunk (keyword, text) right after IHDR, CRC and all: a valid PNG carrying markup. */
function withTextChunk(image: Buffer, keyword: string, text: string): Buffer {
  const data = Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(text, 'latin1')]);
  const type = Buffer.from('tEXt', 'latin1');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([type, data])) >>> 0);
  const ihdrEnd = 8 + 4 + 4 + 13 + 4;
  return Buffer.concat([image.subarray(0, ihdrEnd), len, type, data, crc, image.subarray(ihdrEnd)]);
}

describe('colour contrast (core/color.ts)', () => {
  it('puts dark text on light brand colours and white on dark ones, readable either way', () => {
    for (const c of ['#ffeb3b', '#ffffff', '#a3e635', '#fde68a', '#00ffff']) expect(textOn(c), c).to.equal('#111827');
    // A mid-tone where our dark ink would fall short of 4.5:1: pure black.
    expect(textOn('#ff0000')).to.equal('#000000');
    for (const c of ['#4f46e5', '#000000', '#0f766e', '#7f1d1d', '#1d4ed8']) expect(textOn(c), c).to.equal('#ffffff');
    for (let i = 0; i < 4096; i += 1) {
      const c = `#${[(i >> 8) & 15, (i >> 4) & 15, i & 15].map((n) => (n * 17).toString(16).padStart(2, '0')).join('')}`;
      // Every 12-bit colour.
      // Black or white always reaches at least 4.5:1 against the better of the two.
      expect(contrastRatio(c, textOn(c)), c).to.be.at.least(4.5);
      expect(contrastRatio(inkOnWhite(c), '#ffffff'), c).to.be.at.least(4.5);
    }
  });
});

describe('logo sniffing', () => {
  it('knows PNG, JPEG and WebP by their first bytes, and nothing else', async () => {
    const base = sharp({ create: { width: 8, height: 8, channels: 3, background: '#123456' } });
    expect(sniffImage(await base.clone().png().toBuffer())).to.equal('png');
    expect(sniffImage(await base.clone().jpeg().toBuffer())).to.equal('jpeg');
    expect(sniffImage(await base.clone().webp().toBuffer())).to.equal('webp');
    expect(sniffImage(await base.clone().gif().toBuffer())).to.equal(null);
    expect(sniffImage(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'))).to.equal(null);
  });
});

forEachTarget('branding', (target) => {
  let env: TestEnv;
  const http = () => supertest(env.app);
  before(async () => {
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 } });
  });
  after(() => env?.close());

  const merchantOf = async (acct: Account) => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const logoCount = async (acct: Account) => Number((await env.rt.db('brand_logos').where({ merchant_id: (await merchantOf(acct)).key }).count({ n: '*' }).first())!.n);
  /** Settings → Payment page, as the browser posts it (multipart). */
  const saveLook = (acct: Account, fields: Record<string, string>, file?: { bytes: Buffer; name: string; type: string }) => {
    let req = acct.agent.post('/app/settings/branding').field('_csrf', acct.csrf);
    for (const [k, v] of Object.entries(fields)) req = req.field(k, v);
    if (file) req = req.attach('logo', file.bytes, { filename: file.name, contentType: file.type });
    return req;
  };
  const amountLink = async (acct: Account, fields: Record<string, unknown> = {}) => env.rt.services.links.create(await merchantOf(acct), { type: 'amount', name: 'Summer sale', amount: 2500, ...fields });

  describe('Settings → Payment page', () => {
    it('re-encodes an uploaded PNG to a small WebP at a content-addressed URL, cached for good, and shows it on the pay page', async () => {
      const acct = await signUp(env.app);
      await saveLook(acct, { button_style: 'pill', button_label: 'donate' }, { bytes: await png(), name: 'logo.png', type: 'image/png' }).expect(303);
      const m = await merchantOf(acct);
      expect(m.buttonStyle).to.equal('pill');
      expect(m.buttonLabel).to.equal('donate');
      expect(m.logoUrl).to.match(/^\/assets\/logos\/[0-9a-f]{64}\.webp$/);
      const logo = await http().get(m.logoUrl!).buffer(true).parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      }).expect(200);
      expect(logo.headers['content-type']).to.equal('image/webp');
      expect(logo.headers['cache-control']).to.equal('public, max-age=31536000, immutable');
      expect(logo.headers['x-content-type-options']).to.equal('nosniff');
      const bytes = logo.body as Buffer;
      expect(createHash('sha256').update(bytes).digest('hex')).to.equal(/([0-9a-f]{64})/.exec(m.logoUrl!)![1]);
      const meta = await sharp(bytes).metadata();
      expect(meta.format).to.equal('webp');
      expect(meta.width).to.equal(432); // 1200×400 fitted into 480×144
      expect(meta.height).to.equal(144);

      const l = await amountLink(acct);
      const page = await http().get(`/${acct.handle}/${l.path}`).expect(200);
      expect(page.text).to.include(`<img class="merchant-logo" src="${m.logoUrl}" alt="${m.name}">`);
      expect(page.text).to.include('<body class="btn-pill">');
      expect(page.text).to.include('>Donate €25.00</button>');
    });

    for (const [kind, make] of [
      ['JPEG', () => sharp({ create: { width: 300, height: 100, channels: 3, background: '#aa0000' } }).jpeg().toBuffer()],
      ['WebP', () => sharp({ create: { width: 300, height: 100, channels: 4, background: '#00aa0080' } }).webp().toBuffer()],
    ] as const) {
      it(`accepts a ${kind} logo (whatever its name says) and keeps it at its size`, async () => {
        const acct = await signUp(env.app);
        await saveLook(acct, { button_style: 'rounded', button_label: 'pay' }, { bytes: await make(), name: 'picture.bin', type: 'application/octet-stream' }).expect(303);
        const m = await merchantOf(acct);
        const res = await http().get(m.logoUrl!).expect(200);
        expect(res.headers['content-type']).to.equal('image/webp');
        expect(await logoCount(acct)).to.equal(1);
      });
    }

    it('strips a script hidden in a PNG’s metadata: what is served is re-encoded pixels only', async () => {
      const acct = await signUp(env.app);
      const evil = withTextChunk(await png(200, 60), 'Comment', '<script>alert(document.cookie)</script>');
      expect(evil.includes('<script>'), 'the test image carries the script').to.equal(true);
      expect((await sharp(evil).metadata()).format, 'and is still a valid PNG').to.equal('png');
      await saveLook(acct, { button_style: 'rounded', button_label: 'pay' }, { bytes: evil, name: 'logo.png', type: 'image/png' }).expect(303);
      const m = await merchantOf(acct);
      const stored = await env.rt.db('brand_logos').where({ merchant_id: m.key }).first('bytes', 'content_type');
      const bytes = Buffer.from(stored.bytes);
      expect(stored.content_type).to.equal('image/webp');
      expect(bytes.includes('script')).to.equal(false);
      expect(bytes.includes('Comment')).to.equal(false);
      expect(sniffImage(bytes)).to.equal('webp');
    });

    const bad: [string, string, () => Promise<{ bytes: Buffer; name: string; type: string }>][] = [
      ['a file over 1 MB', 'file_too_large', async () => ({ bytes: Buffer.concat([await png(10, 10), Buffer.alloc(1024 * 1024)]), name: 'big.png', type: 'image/png' })],
      ['an SVG (with a script) named .png', 'unsupported_type', async () => ({ bytes: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>'), name: 'logo.png', type: 'image/png' })],
      ['an SVG as itself', 'unsupported_type', async () => ({ bytes: Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'), name: 'logo.svg', type: 'image/svg+xml' })],
      ['a text file renamed .png', 'unsupported_type', async () => ({ bytes: Buffer.from('hello, I am not an image\n'), name: 'notes.png', type: 'image/png' })],
      ['a GIF', 'unsupported_type', async () => ({ bytes: await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).gif().toBuffer(), name: 'a.gif', type: 'image/gif' })],
      ['a corrupt PNG (cut short)', 'corrupt_image', async () => {
        const whole = await sharp({ create: { width: 400, height: 400, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).png().toBuffer();
        return { bytes: whole.subarray(0, Math.floor(whole.length / 2)), name: 'cut.png', type: 'image/png' };
      }],
      ['a PNG header with garbage after it', 'corrupt_image', async () => ({ bytes: Buffer.concat([(await png(10, 10)).subarray(0, 16), Buffer.from('garbage'.repeat(50))]), name: 'x.png', type: 'image/png' })],
      ['an image of more than 25 megapixels', 'image_too_large', async () => ({ bytes: await sharp({ create: { width: 6000, height: 6000, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png({ compressionLevel: 9 }).toBuffer(), name: 'huge.png', type: 'image/png' })],
      ['an empty file', 'empty_file', async () => ({ bytes: Buffer.alloc(0), name: 'empty.png', type: 'image/png' })],
    ];
    for (const [label, code, file] of bad) {
      it(`refuses ${label} with 422 by the logo field (${code}) and saves nothing, not even the other fields`, async () => {
        const acct = await signUp(env.app);
        const before = await merchantOf(acct);
        const res = await saveLook(acct, { button_style: 'square', button_label: 'book' }, await file()).expect(422);
        expect(fieldError(res.text, 'logo')).not.to.equal('');
        expect(res.text).to.match(/id="f-logo"[^>]*aria-invalid="true"/);
        const after = await merchantOf(acct);
        expect({ style: after.buttonStyle, label: after.buttonLabel, logo: after.logoUrl }).to.deep.equal({ style: before.buttonStyle, label: before.buttonLabel, logo: before.logoUrl });
        expect(await logoCount(acct)).to.equal(0);
        const events = await env.rt.events.listForMerchant(after.key);
        expect(events.filter((e) => e.type === 'merchant.updated')).to.have.length(0);
      });
    }

    it('keeps the current logo when a bad replacement is refused', async () => {
      const acct = await signUp(env.app);
      await saveLook(acct, { button_style: 'rounded', button_label: 'pay' }, { bytes: await png(), name: 'a.png', type: 'image/png' }).expect(303);
      const before = await merchantOf(acct);
      await saveLook(acct, { button_style: 'rounded', button_label: 'pay' }, { bytes: Buffer.from('<svg/>'), name: 'b.png', type: 'image/png' }).expect(422);
      expect((await merchantOf(acct)).logoUrl).to.equal(before.logoUrl);
      await http().get(before.logoUrl!).expect(200);
    });

    for (const [field, value] of [['button_style', 'neon'], ['button_label', 'steal'], ['button_style', '']] as const) {
      it(`refuses a ${field} of “${value}” with 422 by the field`, async () => {
        const acct = await signUp(env.app);
        const res = await saveLook(acct, { button_style: 'pill', button_label: 'buy', [field]: value }).expect(422);
        expect(fieldError(res.text, field)).not.to.equal('');
        expect((await merchantOf(acct)).buttonStyle).to.equal('rounded');
      });
    }

    it('replaces the logo (the old one is gone) and removes it', async () => {
      const acct = await signUp(env.app);
      await saveLook(acct, { button_style: 'rounded', button_label: 'pay' }, { bytes: await png(300, 100, '#ff0000'), name: 'a.png', type: 'image/png' }).expect(303);
      const first = (await merchantOf(acct)).logoUrl!;
      await saveLook(acct, { button_style: 'rounded', button_label: 'pay' }, { bytes: await png(300, 100, '#0000ff'), name: 'b.png', type: 'image/png' }).expect(303);
      const second = (await merchantOf(acct)).logoUrl!;
      expect(second).not.to.equal(first);
      await http().get(first).expect(404);
      await http().get(second).expect(200);
      expect(await logoCount(acct)).to.equal(1);
      await saveLook(acct, { button_style: 'rounded', button_label: 'pay', remove_logo: 'on' }).expect(303);
      expect((await merchantOf(acct)).logoUrl).to.equal(null);
      await http().get(second).expect(404);
      const page = await http().get(`/${acct.handle}`).expect(200);
      expect(page.text).not.to.include('merchant-logo');
    });

    it('needs the CSRF token and a signed-in merchant', async () => {
      const acct = await signUp(env.app);
      const res = await acct.agent.post('/app/settings/branding').field('button_style', 'pill').field('button_label', 'pay').attach('logo', await png(), { filename: 'a.png', contentType: 'image/png' });
      expect(res.status).to.equal(403);
      expect((await merchantOf(acct)).buttonStyle).to.equal('rounded');
      const anon = await http().post('/app/settings/branding').field('_csrf', acct.csrf).field('button_style', 'pill');
      expect(anon.status).to.be.oneOf([302, 303, 403]);
    });

    it('answers a broken multipart body with 400, never 500, and saves nothing', async () => {
      const acct = await signUp(env.app);
      const noBoundary = await acct.agent.post('/app/settings/branding').set('Content-Type', 'multipart/form-data').send('whatever');
      expect(noBoundary.status).to.equal(400);
      const cut = await acct.agent
        .post('/app/settings/branding')
        .set('Content-Type', 'multipart/form-data; boundary=XYZ')
        .send(`--XYZ\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${acct.csrf}\r\n--XYZ\r\nContent-Disposition: form-data; name="logo"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG`);
      expect(cut.status, cut.text.slice(0, 200)).to.equal(400);
      expect(await logoCount(acct)).to.equal(0);
    });

    it('answers 404 for a logo that is not there or not a logo name', async () => {
      await http().get(`/assets/logos/${'0'.repeat(64)}.webp`).expect(404);
      await http().get('/assets/logos/..%2F..%2Fetc%2Fpasswd').expect(404);
      await http().get(`/assets/logos/${'a'.repeat(64)}.svg`).expect(404);
    });
  });

  describe('readable button text', () => {
    it('writes the text colour for the brand colour into the page: dark on yellow, white on indigo', async () => {
      const acct = await signUp(env.app);
      const light = await amountLink(acct, { name: 'Light', branding: { color: '#ffeb3b' } });
      const dark = await amountLink(acct, { name: 'Dark' });
      const a = await http().get(`/${acct.handle}/${light.path}`).expect(200);
      expect(a.text).to.match(/:root\{--brand:#ffeb3b;--on-brand:#111827;--brand-ink:#[0-9a-f]{6}\}/);
      const ink = /--brand-ink:(#[0-9a-f]{6})/.exec(a.text)![1];
      expect(contrastRatio(ink, '#ffffff')).to.be.at.least(4.5);
      const b = await http().get(`/${acct.handle}/${dark.path}`).expect(200);
      expect(b.text).to.include(':root{--brand:#4f46e5;--on-brand:#ffffff;--brand-ink:#4f46e5}');
    });
  });

  describe('per-link overrides', () => {
    it('takes branding on the API, shows it on the pay page, and inherits what it leaves out', async () => {
      const acct = await signUp(env.app);
      await saveLook(acct, { button_style: 'square', button_label: 'buy' }, { bytes: await png(), name: 'a.png', type: 'image/png' }).expect(303);
      const m = await merchantOf(acct);
      const { secret } = await env.rt.services.apiKeys.create(m, { name: 'brand' });
      const call = apiClient(env.app, secret);
      const made = await call('post', '/links', { type: 'amount', name: 'Gala', amount: 5000, branding: { logo: 'none', button_style: 'pill', button_label: 'donate', color: '#0F766E' } }).expect(201);
      expect(made.body.branding).to.deep.equal({ logo: 'none', button_style: 'pill', button_label: 'donate', color: '#0f766e' });
      let page = await http().get(`/${acct.handle}/${made.body.path}`).expect(200);
      expect(page.text).to.include('<body class="btn-pill">');
      expect(page.text).to.include('>Donate €50.00</button>');
      expect(page.text).to.include('--brand:#0f766e;');
      expect(page.text, 'logo: none').not.to.include('merchant-logo');

      // Partial update: only the style goes back to the merchant's; the rest stays.
      const patched = await call('patch', `/links/${made.body.id}`, { branding: { button_style: null, logo: 'inherit' } }).expect(200);
      expect(patched.body.branding).to.deep.equal({ logo: 'inherit', button_style: null, button_label: 'donate', color: '#0f766e' });
      page = await http().get(`/${acct.handle}/${made.body.path}`).expect(200);
      expect(page.text, 'the cached page follows the update').to.include('<body class="btn-square">');
      expect(page.text).to.include(`src="${m.logoUrl}"`);
      expect(page.text).to.include('>Donate €50.00</button>');

      const cleared = await call('patch', `/links/${made.body.id}`, { branding: null }).expect(200);
      expect(cleared.body.branding).to.deep.equal({ logo: 'inherit', button_style: null, button_label: null, color: null });
      page = await http().get(`/${acct.handle}/${made.body.path}`).expect(200);
      expect(page.text).to.include('>Buy €50.00</button>');

      const plain = await call('post', '/links', { type: 'amount', name: 'Plain', amount: 100 }).expect(201);
      expect(plain.body.branding).to.deep.equal({ logo: 'inherit', button_style: null, button_label: null, color: null });
    });

    for (const [label, branding, field] of [
      ['a colour name', { color: 'red' }, 'branding.color'],
      ['CSS in the colour', { color: '#000;}body{display:none' }, 'branding.color'],
      ['an unknown style', { button_style: 'round' }, 'branding.button_style'],
      ['an unknown label', { button_label: 'Pay now' }, 'branding.button_label'],
      ['an unknown logo mode', { logo: 'https://evil.example/x.svg' }, 'branding.logo'],
      ['an unknown member', { font: 'Comic Sans' }, 'branding'],
      ['a string', 'pill', 'branding'],
    ] as const) {
      it(`refuses ${label} in branding with 422 on ${field}, and writes nothing`, async () => {
        const acct = await signUp(env.app);
        const m = await merchantOf(acct);
        const { secret } = await env.rt.services.apiKeys.create(m, { name: 'brand' });
        const call = apiClient(env.app, secret);
        const res = await call('post', '/links', { type: 'amount', name: 'Bad', amount: 100, branding }).expect(422);
        expect(res.body.errors.map((e: { field: string }) => e.field)).to.include(field);
        expect(await env.rt.services.links.hasAny(m.key)).to.equal(false);
      });
    }

    it('saves the link form’s “Payment page look”, and refuses a bad colour by its field', async () => {
      const acct = await signUp(env.app);
      const l = await amountLink(acct);
      const edit = await acct.agent.get(`/app/links/${l.id}/edit`).expect(200);
      expect(edit.text).to.include('name="brand_button_style"');
      const form = { _csrf: csrfFrom(edit.text), name: 'Summer sale', path: l.path, amount: '25.00', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on' };
      await acct.agent.post(`/app/links/${l.id}`).type('form').send({ ...form, brand_logo: 'inherit', brand_button_style: 'square', brand_button_label: 'book', brand_color_own: 'on', brand_color_value: '#a3e635' }).expect(303);
      const saved = await env.rt.services.links.get(await merchantOf(acct), l.id);
      expect(saved.branding).to.deep.equal({ button_style: 'square', button_label: 'book', color: '#a3e635' });
      const page = await http().get(`/${acct.handle}/${l.path}`).expect(200);
      expect(page.text).to.include('>Book €25.00</button>');
      expect(page.text).to.include('--on-brand:#111827');

      const res = await acct.agent.post(`/app/links/${l.id}`).type('form').send({ ...form, brand_logo: 'inherit', brand_button_style: '', brand_button_label: '', brand_color_own: 'on', brand_color_value: 'javascript:alert(1)' }).expect(422);
      expect(fieldError(res.text, 'brand_color_value')).not.to.equal('');
      expect((await env.rt.services.links.get(await merchantOf(acct), l.id)).branding, 'unchanged').to.deep.equal(saved.branding);
    });
  });

  describe('the cached pay page', () => {
    it('follows the merchant’s branding changes at once (the page is rendered once per version)', async () => {
      const acct = await signUp(env.app);
      const l = await amountLink(acct);
      const url = `/${acct.handle}/${l.path}`;
      const first = await http().get(url).expect(200);
      expect(first.text).to.include('<body class="btn-rounded">');
      expect(first.text).to.include('>Pay €25.00</button>');
      // Served from the rendered-page cache now; a change must not leave it stale.
      await http().get(url).expect(200);
      await saveLook(acct, { button_style: 'square', button_label: 'book' }).expect(303);
      const second = await http().get(url).expect(200);
      expect(second.text).to.include('<body class="btn-square">');
      expect(second.text).to.include('>Book €25.00</button>');
      await saveLook(acct, { button_style: 'square', button_label: 'book' }, { bytes: await png(), name: 'a.png', type: 'image/png' }).expect(303);
      const third = await http().get(url).expect(200);
      expect(third.text).to.include(`src="${(await merchantOf(acct)).logoUrl}"`);
      // The brand colour (Business settings) too.
      const m = await merchantOf(acct);
      await env.rt.services.merchants.updateSettings(m, { name: m.name, handle: m.handle, currency: m.currency, timezone: m.timezone, brand_color: '#ffeb3b' });
      const fourth = await http().get(url).expect(200);
      expect(fourth.text).to.include('--brand:#ffeb3b;--on-brand:#111827');
    });

    it('follows a change made by another process (through Redis) when there is one', async function () {
      if (target.name !== 'mariadb') this.skip();
      const acct = await signUp(env.app);
      const l = await amountLink(acct);
      const url = `/${acct.handle}/${l.path}`;
      expect((await http().get(url).expect(200)).text).to.include('btn-rounded');
      const other = await env.sibling();
      try {
        const m = await other.services.merchants.getByHandle(acct.handle);
        await other.services.branding.saveLook(m!, { button_style: 'pill', button_label: 'pay' });
        let text = '';
        for (let i = 0; i < 100 && !text.includes('btn-pill'); i++) {
          await new Promise((r) => setTimeout(r, 20));
          text = (await http().get(url).expect(200)).text;
        }
        expect(text).to.include('btn-pill');
      } finally {
        await other.close();
      }
    });

    it('keeps a branded pay page with its stylesheet under 30 KB', async () => {
      const acct = await signUp(env.app);
      await saveLook(acct, { button_style: 'pill', button_label: 'donate' }, { bytes: await png(), name: 'a.png', type: 'image/png' }).expect(303);
      const l = await amountLink(acct, { name: 'N'.repeat(120), description: 'x'.repeat(2000), branding: { color: '#ffeb3b' } });
      const res = await http().get(`/${acct.handle}/${l.path}`).expect(200);
      const sheets = [...res.text.matchAll(/<link rel="stylesheet" href="([^"]+)"/g)].map((m) => m[1]);
      expect(sheets).to.have.length(1);
      let bytes = Buffer.byteLength(res.text);
      for (const href of sheets) bytes += Buffer.byteLength((await http().get(href).expect(200)).text);
      expect(bytes).to.be.below(30 * 1024);
      expect(res.text).not.to.match(/<script/i);
    });
  });

  describe('the live preview', () => {
    const previewForm = (acct: Account, extra: Record<string, string> = {}) => ({ _csrf: acct.csrf, type: 'amount', name: 'Charity run', amount: '12.5', currency: 'EUR', description: 'Every euro counts.', brand_logo: 'inherit', brand_button_style: 'pill', brand_button_label: 'donate', brand_color_value: '#4f46e5', ...extra });

    it('renders the real pay page from the typed fields, for htmx as a sandboxed srcdoc frame, with no form action', async () => {
      const acct = await signUp(env.app);
      const res = await acct.agent.post('/app/links/preview?type=amount').set('HX-Request', 'true').type('form').send(previewForm(acct)).expect(200);
      expect(res.text).to.match(/^<iframe class="pay-preview-frame" name="link-preview" title="Preview of the payment page" sandbox="allow-same-origin" srcdoc="/);
      const doc = /srcdoc="([^"]*)"/.exec(res.text)![1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
      expect(doc).to.include('<h1>Charity run</h1>');
      expect(doc).to.include('Every euro counts.');
      expect(doc).to.include('>Donate €12.50</button>');
      expect(doc).to.include('<body class="btn-pill">');
      expect(doc).to.include('Preview — this page takes no payments');
      expect(doc).to.match(/<form class="pay-form" id="pay-form">/);
      expect(doc).not.to.match(/action=/);
      expect(doc).not.to.match(/type="submit"/);
      expect(doc).not.to.match(/<script/i);
      // No nonce of its own under the dashboard's CSP: its colours come from a stylesheet.
      expect(doc).to.include('<link rel="stylesheet" href="/assets/brand/4f46e5.css">');
      const css = await http().get('/assets/brand/4f46e5.css').expect(200);
      expect(css.headers['content-type']).to.match(/^text\/css/);
      expect(css.text).to.equal(':root{--brand:#4f46e5;--on-brand:#ffffff;--brand-ink:#4f46e5}');
    });

    it('previews the checkout as typed: collected fields, a customer-chosen amount, an items link’s ticked products', async () => {
      const acct = await signUp(env.app);
      const docOf = (res: { text: string }) => /srcdoc="([^"]*)"/.exec(res.text)![1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
      const collect = { collect_form: '1', collect_phone: 'required', collect_address: 'on', collect_terms_url: 'https://shop.example/terms', cf_label_0: 'Company name', cf_type_0: 'text', cf_label_1: '', cf_type_1: 'dropdown' };
      const asked = docOf(await acct.agent.post('/app/links/preview?type=amount').set('HX-Request', 'true').type('form').send(previewForm(acct, collect)).expect(200));
      expect(asked).to.match(/<input[^>]*name="phone"[^>]*required/);
      expect(asked).to.include('name="address"');
      expect(asked).to.include('Company name');
      expect(asked).to.include('https://shop.example/terms');
      // A custom field still being typed (no label yet, a dropdown without options) hides nothing else.
      const typing = docOf(await acct.agent.post('/app/links/preview?type=amount').set('HX-Request', 'true').type('form').send(previewForm(acct, { ...collect, cf_label_1: 'Size', cf_type_1: 'dropdown' })).expect(200));
      expect(typing).to.include('Company name');
      expect(typing).to.match(/<input[^>]*name="phone"[^>]*required/);

      const chosen = docOf(await acct.agent.post('/app/links/preview?type=amount').set('HX-Request', 'true').type('form').send(previewForm(acct, { amount_mode: 'custom', amount_min: '5', amount_max: '100', amount_suggested: '10 25' })).expect(200));
      expect(chosen).to.include('€10.00');
      expect(chosen).to.include('€25.00');
      expect(chosen).not.to.include('Donate €12.50');
      // A maximum below the minimum would not save: the preview still shows the amount to choose.
      const unsaved = docOf(await acct.agent.post('/app/links/preview?type=amount').set('HX-Request', 'true').type('form').send(previewForm(acct, { amount_mode: 'custom', amount_min: '50', amount_max: '5' })).expect(200));
      expect(unsaved).to.match(/name="amount"/);

      const merchant = await merchantOf(acct);
      const beans = await env.rt.services.products.create(merchant.key, { name: 'Beans 1 kg', price: 3450, currency: 'EUR' });
      const mug = await env.rt.services.products.create(merchant.key, { name: 'Enamel mug', price: 1200, currency: 'EUR' });
      const items = docOf(
        await acct.agent
          .post('/app/links/preview?type=items')
          .set('HX-Request', 'true')
          .type('form')
          .send({ ...previewForm(acct, { type: 'items' }), item: beans.id, [`qty_mode_${beans.id}`]: 'fixed', [`qty_${beans.id}`]: '2', [`qty_mode_${mug.id}`]: 'fixed', [`qty_${mug.id}`]: '1' })
          .expect(200),
      );
      expect(items).to.include('Beans 1 kg');
      expect(items, 'an unticked product is not on the page').not.to.include('Enamel mug');
      expect(items).to.include('€69.00');
      expect(items, 'fixed quantities only: nothing to re-price').not.to.include('Update total');
    });

    it('posts into the frame without JavaScript, framed by the dashboard only', async () => {
      const acct = await signUp(env.app);
      const res = await acct.agent.post('/app/links/preview?type=amount').type('form').send(previewForm(acct, { name: 'No JS' })).expect(200);
      expect(res.text).to.match(/^<!doctype html>/);
      expect(res.text).to.include('<h1>No JS</h1>');
      expect(res.headers['content-security-policy']).to.include("frame-ancestors 'self'");
      expect(res.headers['cache-control']).to.equal('no-store');
    });

    it('shows a saved link from its own merchant only, and records no view', async () => {
      const acct = await signUp(env.app);
      const other = await signUp(env.app);
      const l = await amountLink(acct, { name: 'Saved one' });
      const res = await acct.agent.get(`/app/links/preview?link=${l.id}`).expect(200);
      expect(res.text).to.include('<h1>Saved one</h1>');
      await acct.agent.post(`/app/links/preview?link=${l.id}`).set('HX-Request', 'true').type('form').send(previewForm(acct, { name: 'Renamed' })).expect(200);
      await other.agent.get(`/app/links/preview?link=${l.id}`).expect(404);
      await other.agent.post(`/app/links/preview?link=${l.id}`).set('HX-Request', 'true').type('form').send(previewForm(other)).expect(404);
      await env.rt.views?.flush();
      const after = await env.rt.services.links.get(await merchantOf(acct), l.id);
      expect(after.views).to.equal(0);
      expect(after.name, 'a preview writes nothing').to.equal('Saved one');
    });

    it('needs the CSRF token for a POST, and a session for either', async () => {
      const acct = await signUp(env.app);
      const noToken = await acct.agent.post('/app/links/preview?type=amount').set('HX-Request', 'true').type('form').send({ ...previewForm(acct), _csrf: undefined });
      expect(noToken.status).to.equal(403);
      const anon = await http().get('/app/links/preview?type=amount');
      expect(anon.status).to.be.oneOf([302, 303]);
    });

    it('is beside the link form, with the fields it previews', async () => {
      const acct = await signUp(env.app);
      const page = await acct.agent.get('/app/links/new?type=amount').expect(200);
      expect(page.text).to.include('<details class="link-preview">');
      expect(page.text).to.include('hx-post="/app/links/preview?type=amount"');
      expect(page.text).to.include('src="/app/links/preview?type=amount"');
      expect(page.text).to.include('id="link-form"');
      const made = await acct.agent.post('/app/links').type('form').send({ _csrf: csrfFrom(page.text), type: 'amount', name: 'From the form', amount: '5.00', currency: 'EUR', limit: 'unlimited', redirect_target: 'same', active: 'on', brand_logo: 'none', brand_button_style: 'pill', brand_button_label: '', brand_color_value: '#000000' }).expect(303);
      const id = /\/app\/links\/(lnk_[0-9A-Za-z]+)/.exec(made.headers.location)![1];
      expect((await env.rt.services.links.get(await merchantOf(acct), id)).branding).to.deep.equal({ logo: 'none', button_style: 'pill' });
    });
  });
});
