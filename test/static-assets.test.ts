// Static assets and compression (issue 14 item 11): CSS and JS under content-hashed URLs with
// immutable caching (the plain URL keeps working with a short cache), brotli / gzip / identity as the
// client asks, nothing compressed under ~1 KB, and pages that reference the hashed URLs.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import express from 'express';
import { forEachTarget } from './support/targets.ts';
import { signUp, useEnv } from './support/harness.ts';
import { contentHash, createAssets } from '../src/core/assets.ts';
import { pickEncoding } from '../src/core/compress.ts';
import { PUBLIC_DIR } from '../src/runtime.ts';

interface Raw {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A GET that keeps the bytes as sent (fetch and supertest would decompress them). */
function rawGet(base: string, urlPath: string, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}${urlPath}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
  });
}

const decode = (r: Raw): string => {
  const enc = r.headers['content-encoding'];
  if (enc === 'br') return zlib.brotliDecompressSync(r.body).toString('utf8');
  if (enc === 'gzip') return zlib.gunzipSync(r.body).toString('utf8');
  expect(enc, 'no other encoding').to.equal(undefined);
  return r.body.toString('utf8');
};

async function listen(handler: http.RequestListener): Promise<{ base: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('static assets: hashes and encodings (unit)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-assets-'));
    fs.mkdirSync(path.join(dir, 'css'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('puts the content hash in the URL, and a changed file gets a new one', () => {
    const file = path.join(dir, 'css', 'site.css');
    fs.writeFileSync(file, 'body { color: red }');
    const first = createAssets({ roots: [{ prefix: '/static', dir }] }).url('/static/css/site.css');
    expect(first).to.equal(`/static/css/site.${contentHash('body { color: red }')}.css`);
    fs.writeFileSync(file, 'body { color: blue }');
    const second = createAssets({ roots: [{ prefix: '/static', dir }] }).url('/static/css/site.css');
    expect(second).to.match(/^\/static\/css\/site\.[0-9a-f]{10}\.css$/);
    expect(second).not.to.equal(first);
    expect(second).to.equal(`/static/css/site.${contentHash('body { color: blue }')}.css`);
  });

  it('in watch mode (development) the same instance notices the edit', () => {
    const file = path.join(dir, 'css', 'site.css');
    fs.writeFileSync(file, 'a{}');
    const assets = createAssets({ roots: [{ prefix: '/static', dir }], watch: true });
    const before = assets.url('/static/css/site.css');
    fs.writeFileSync(file, 'a{color:red}');
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5_000));
    expect(assets.url('/static/css/site.css')).not.to.equal(before);
  });

  it('leaves a path it does not serve unchanged, and never leaves its root', () => {
    fs.writeFileSync(path.join(dir, 'secret.css'), 'x');
    const assets = createAssets({ roots: [{ prefix: '/static/css', dir: path.join(dir, 'css') }] });
    expect(assets.url('/static/css/missing.css')).to.equal('/static/css/missing.css');
    expect(assets.url('/static/css/../secret.css')).to.equal('/static/css/../secret.css');
    expect(assets.url('/static/img/logo.png')).to.equal('/static/img/logo.png');
  });

  it('picks br, then gzip, honouring q-values and *', () => {
    expect(pickEncoding(undefined)).to.equal(null);
    expect(pickEncoding('')).to.equal(null);
    expect(pickEncoding('identity')).to.equal(null);
    expect(pickEncoding('gzip, deflate, br, zstd')).to.equal('br');
    expect(pickEncoding('gzip, deflate')).to.equal('gzip');
    expect(pickEncoding('br;q=0, gzip')).to.equal('gzip');
    expect(pickEncoding('br;q=0.5, gzip;q=0.8')).to.equal('gzip');
    expect(pickEncoding('*')).to.equal('br');
    expect(pickEncoding('*;q=0')).to.equal(null);
    expect(pickEncoding('gzip;q=0, br;q=0')).to.equal(null);
  });

  it('serves a plain file through an Express mount, old hashes with a short cache', async () => {
    fs.writeFileSync(path.join(dir, 'css', 'site.css'), 'p{margin:0}'.repeat(200));
    const assets = createAssets({ roots: [{ prefix: '/static', dir }], shortMaxAge: 60 });
    const app = express();
    app.use('/static', (req, res, next) => assets.handler(req, res, next));
    app.use((_req, res) => res.status(404).end());
    const server = await listen(app);
    try {
      const hashed = assets.url('/static/css/site.css');
      const ok = await rawGet(server.base, hashed);
      expect(ok.headers['cache-control']).to.equal('public, max-age=31536000, immutable');
      const stale = await rawGet(server.base, '/static/css/site.0123456789.css');
      expect(stale.status).to.equal(200);
      expect(stale.headers['cache-control']).to.equal('public, max-age=60');
      expect(decode(stale)).to.equal(decode(ok));
      expect((await rawGet(server.base, '/static/css/nope.0123456789.css')).status).to.equal(404);
      expect((await rawGet(server.base, '/static/css/..%2f..%2fetc%2fpasswd.css')).status).to.equal(404);
    } finally {
      await server.close();
    }
  });
});

forEachTarget('static assets and compression', (target) => {
  const env = useEnv(target);
  let server: Awaited<ReturnType<typeof listen>>;
  before(async () => {
    server = await listen(env.app);
  });
  after(() => server?.close());

  const appCss = fs.readFileSync(path.join(PUBLIC_DIR, 'css/app.css'), 'utf8');
  const hashedCss = () => `/static/css/app.${contentHash(appCss)}.css`;

  it('serves app.css under its hashed URL as brotli, gzip or identity, as the client asks, cached for a year', async () => {
    const cases: [string | undefined, string | undefined][] = [
      ['gzip, deflate, br', 'br'],
      ['gzip', 'gzip'],
      ['br;q=0, gzip', 'gzip'],
      [undefined, undefined],
      ['identity', undefined],
    ];
    for (const [accept, encoding] of cases) {
      const res = await rawGet(server.base, hashedCss(), accept ? { 'accept-encoding': accept } : {});
      expect(res.status, String(accept)).to.equal(200);
      expect(res.headers['content-encoding'], String(accept)).to.equal(encoding);
      expect(res.headers['cache-control']).to.equal('public, max-age=31536000, immutable');
      expect(res.headers.vary).to.match(/Accept-Encoding/i);
      expect(res.headers['content-type']).to.match(/^text\/css/);
      expect(Number(res.headers['content-length'])).to.equal(res.body.length);
      expect(decode(res)).to.equal(appCss);
      if (encoding) expect(res.body.length, `${encoding} is smaller`).to.be.below(appCss.length / 3);
    }
  });

  it('keeps the plain URL working with a short cache, and answers 304 to a matching ETag', async () => {
    const res = await rawGet(server.base, '/static/css/app.css', { 'accept-encoding': 'br' });
    expect(res.status).to.equal(200);
    expect(res.headers['cache-control']).to.match(/^public, max-age=\d{1,4}$/);
    expect(decode(res)).to.equal(appCss);
    const again = await rawGet(server.base, '/static/css/app.css', { 'accept-encoding': 'br', 'if-none-match': String(res.headers.etag) });
    expect(again.status).to.equal(304);
    expect(again.body.length).to.equal(0);
  });

  it('does not compress a file under 1 KB', async () => {
    const print = fs.readFileSync(path.join(PUBLIC_DIR, 'js/print.js'));
    expect(print.length).to.be.below(1024);
    const res = await rawGet(server.base, `/static/js/print.${contentHash(print)}.js`, { 'accept-encoding': 'gzip, br' });
    expect(res.status).to.equal(200);
    expect(res.headers['content-encoding']).to.equal(undefined);
    expect(res.headers['cache-control']).to.equal('public, max-age=31536000, immutable');
    expect(res.body.equals(print)).to.equal(true);
  });

  it('dashboard pages reference hashed CSS and JS (htmx too), each served immutable', async () => {
    const acct = await signUp(env.app);
    const page = await acct.agent.get('/app/customers/import').expect(200);
    const refs = [...page.text.matchAll(/(?:href|src)="(\/static\/[^"]+)"/g)].map((m) => m[1]);
    expect(refs).to.include(hashedCss());
    expect(refs.some((r) => /^\/static\/vendor\/htmx\.min\.[0-9a-f]{10}\.js$/.test(r)), refs.join(' ')).to.equal(true);
    expect(refs.some((r) => /^\/static\/vendor\/htmx-ext-sse\/sse\.min\.[0-9a-f]{10}\.js$/.test(r)), refs.join(' ')).to.equal(true);
    expect(refs.some((r) => /^\/static\/js\/csv-file\.[0-9a-f]{10}\.js$/.test(r)), refs.join(' ')).to.equal(true);
    for (const ref of refs) {
      expect(ref, 'every static reference is hashed').to.match(/\.[0-9a-f]{10}\.(css|js)$/);
      const res = await rawGet(server.base, ref, { 'accept-encoding': 'br' });
      expect(res.status, ref).to.equal(200);
      expect(res.headers['cache-control'], ref).to.equal('public, max-age=31536000, immutable');
    }
  });

  it('compresses a rendered page over 2.5 KB when asked (br, gzip), not otherwise, and says it varies', async () => {
    const acct = await signUp(env.app);
    const m = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    const link = await env.rt.services.links.create(m, { type: 'amount', name: 'Espresso workshop', amount: 2500, description: 'Grind, dose, tamp and pull. '.repeat(60) });
    const urlPath = `/${m.handle}/${link.path}`;
    const plain = await rawGet(server.base, urlPath);
    expect(plain.body.length).to.be.above(2560);
    expect(plain.headers['content-encoding']).to.equal(undefined);
    expect(plain.headers.vary).to.match(/Accept-Encoding/i);
    for (const enc of ['br', 'gzip']) {
      const res = await rawGet(server.base, urlPath, { 'accept-encoding': `${enc}, identity` });
      expect(res.status).to.equal(200);
      expect(res.headers['content-encoding'], enc).to.equal(enc);
      expect(res.headers.vary).to.match(/Accept-Encoding/i);
      const html = decode(res);
      expect(html).to.match(/^<!doctype html>/i);
      expect(html).to.include('Espresso workshop');
      expect(res.body.length).to.be.below(Buffer.byteLength(html) / 2);
    }
    // The pay page links its stylesheet by hash.
    expect(plain.body.toString()).to.match(/<link rel="stylesheet" href="\/static\/css\/pay\.[0-9a-f]{10}\.css">/);
    // A dashboard page too (supertest's agent decodes it).
    const dash = await acct.agent.get(`/app/links/${link.id}`).set('Accept-Encoding', 'gzip').expect(200);
    expect(dash.headers['content-encoding']).to.equal('gzip');
    expect(dash.text).to.include('Espresso workshop');
  });

  it('leaves a small page (a short pay page, a 404 fragment) uncompressed: not worth the CPU on the hot path', async () => {
    const acct = await signUp(env.app);
    const m = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    const link = await env.rt.services.links.create(m, { type: 'amount', name: 'Summer sale', amount: 1250 });
    const pay = await rawGet(server.base, `/${m.handle}/${link.path}`, { 'accept-encoding': 'gzip, deflate, br' });
    expect(pay.status).to.equal(200);
    expect(pay.body.length).to.be.below(2560);
    expect(pay.headers['content-encoding']).to.equal(undefined);
    const res = await rawGet(server.base, '/nobody-here-at-all', { 'accept-encoding': 'br', 'hx-request': 'true' });
    expect(res.status).to.equal(404);
    expect(res.headers['content-encoding']).to.equal(undefined);
  });
});
