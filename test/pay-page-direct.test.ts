// Plain pay-page GETs are answered before Express (src/app.ts, features/public/pay-page.ts `direct`).
// Which path answered is seen on the request: Express re-prototypes every request it handles
// (`Object.setPrototypeOf(req, app.request)`), the direct path leaves it a plain IncomingMessage.
// Whichever path answers, the page and its headers must be the same.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, uniqueHandle, type TestEnv } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';
import { unansweredRequests } from '../src/core/pace.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Express handled the request (it re-prototyped it). */
  viaExpress: boolean;
}

/** Headers that differ per request by design. */
const PER_REQUEST = ['date', 'x-request-id', 'content-security-policy'];
const nonceOf = (csp: string | undefined) => /'nonce-([^']+)'/.exec(csp ?? '')?.[1];

forEachTarget('pay pages answered before Express', (target) => {
  let env: TestEnv;
  let server: http.Server;
  let origin: string;
  let shop: Merchant;
  let path: string;

  before(async () => {
    env = await build(target);
    // A server that notes, per response, whether Express took the request over.
    server = http.createServer((req, res) => {
      const writeHead = res.writeHead;
      res.writeHead = function (this: http.ServerResponse, ...args: unknown[]) {
        this.setHeader('X-Test-Via', Object.getPrototypeOf(req) === http.IncomingMessage.prototype ? 'direct' : 'express');
        return (writeHead as (...a: unknown[]) => http.ServerResponse).apply(this, args);
      } as http.ServerResponse['writeHead'];
      env.app(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const handle = uniqueHandle('direct');
    ({ merchant: shop } = await env.rt.services.merchants.signUp({ name: 'Direct Bakery', handle, email: `${handle}@example.test`, password: 'correct horse battery' }));
    path = `/${shop.handle}/${(await env.rt.services.links.create(shop, { type: 'amount', name: 'Bread box', amount: 1250 })).path}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await env?.close();
  });

  async function ask(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
    const res = await fetch(`${origin}${url}`, { method: opts.method ?? 'GET', headers: opts.headers, redirect: 'manual' });
    const headers = Object.fromEntries(res.headers) as http.IncomingHttpHeaders;
    return { status: res.status, headers, text: await res.text(), viaExpress: headers['x-test-via'] === 'express' };
  }

  it('answers a plain GET directly: the page, a fresh nonce in the CSP and in the page, the security headers, no-store', async () => {
    const a = await ask(path);
    expect(a.status).to.equal(200);
    expect(a.viaExpress, 'answered before Express').to.equal(false);
    expect(a.text).to.include('<h1>Bread box</h1>').and.include('€12.50').and.include(`action="${path}"`);
    const nonce = nonceOf(a.headers['content-security-policy'] as string);
    expect(nonce).to.be.a('string');
    expect(a.text).to.include(`<style nonce="${nonce}">`);
    const b = await ask(path);
    expect(nonceOf(b.headers['content-security-policy'] as string), 'a nonce per request').not.to.equal(nonce);
    expect(a.headers['cache-control']).to.equal('no-store');
    expect(a.headers['content-type']).to.equal('text/html; charset=utf-8');
    expect(a.headers['x-content-type-options']).to.equal('nosniff');
    expect(a.headers['x-request-id']).to.match(/^[\w-]{8,}$/);
    expect(Number(a.headers['content-length'])).to.equal(Buffer.byteLength(a.text));
    expect(a.headers['set-cookie']).to.equal(undefined);
  });

  it('sends the same page and headers as Express does (a conditional GET still goes through Express)', async () => {
    const direct = await ask(path, { headers: { 'X-Request-Id': 'same-id' } });
    const express = await ask(path, { headers: { 'X-Request-Id': 'same-id', 'If-Modified-Since': new Date(0).toUTCString() } });
    expect([direct.viaExpress, express.viaExpress]).to.deep.equal([false, true]);
    expect(express.status).to.equal(200);
    const strip = (a: Answer) => a.text.replace(nonceOf(a.headers['content-security-policy'] as string)!, 'NONCE');
    expect(strip(direct)).to.equal(strip(express));
    const same = (a: Answer) => Object.entries(a.headers).filter(([k]) => !PER_REQUEST.includes(k) && k !== 'x-test-via' && k !== 'connection' && k !== 'keep-alive');
    expect(same(direct)).to.deep.equal(same(express));
    expect(direct.headers['x-request-id']).to.equal('same-id');
    const cspShape = (a: Answer) => (a.headers['content-security-policy'] as string).replace(/'nonce-[^']+'/, "'nonce-N'");
    expect(cspShape(direct)).to.equal(cspShape(express));
  });

  it('compresses a long page when asked, with the same headers as Express (Vary: Accept-Encoding)', async () => {
    const l = await env.rt.services.links.create(shop, { type: 'amount', name: 'Long story', amount: 500, description: 'All about our bread. '.repeat(95) });
    const url = `/${shop.handle}/${l.path}`;
    const direct = await ask(url, { headers: { 'Accept-Encoding': 'gzip', 'X-Request-Id': 'same-id' } });
    const express = await ask(url, { headers: { 'Accept-Encoding': 'gzip', 'X-Request-Id': 'same-id', 'If-Modified-Since': new Date(0).toUTCString() } });
    expect([direct.viaExpress, express.viaExpress]).to.deep.equal([false, true]);
    expect(direct.headers['content-encoding']).to.equal('gzip');
    expect(direct.headers.vary).to.equal('HX-Request, Accept-Encoding');
    expect(direct.text).to.include('All about our bread.');
    const same = (a: Answer) => Object.entries(a.headers).filter(([k]) => !PER_REQUEST.includes(k) && !['x-test-via', 'connection', 'keep-alive', 'content-length'].includes(k));
    expect(same(direct)).to.deep.equal(same(express));
    const plain = await ask(url, { headers: { 'Accept-Encoding': 'identity' } });
    expect(plain.headers['content-encoding']).to.equal(undefined);
    expect(plain.headers.vary, 'the answer could have differed').to.equal('HX-Request, Accept-Encoding');
  });

  it('answers HEAD directly with the GET’s length and no body', async () => {
    const get = await ask(path);
    const head = await ask(path, { method: 'HEAD' });
    expect(head.status).to.equal(200);
    expect(head.viaExpress).to.equal(false);
    expect(head.text).to.equal('');
    expect(head.headers['content-length']).to.equal(get.headers['content-length']);
  });

  it('answers a query the page does not read (utm_…) directly, and leaves ?c= and ?back= to Express', async () => {
    const utm = await ask(`${path}?utm_source=newsletter`);
    expect([utm.status, utm.viaExpress]).to.deep.equal([200, false]);
    expect(utm.text).to.include(`action="${path}"`);
    const c = await ask(`${path}?c=forged`);
    expect([c.status, c.viaExpress]).to.deep.equal([200, true]);
    expect(c.text, 'the recipient token rides along in the form action').to.include(`action="${path}?c=forged"`);
    const back = await ask(`${path}?back=cs_unknown`);
    expect([back.status, back.viaExpress]).to.deep.equal([200, true]);
  });

  it('leaves redirects, unknown pages, reserved paths and other methods to Express', async () => {
    const upper = await ask(path.toUpperCase());
    expect([upper.status, upper.viaExpress]).to.deep.equal([301, true]);
    expect(upper.headers.location).to.equal(path);
    const unknown = await ask(`/${shop.handle}/no-such-link`);
    expect([unknown.status, unknown.viaExpress]).to.deep.equal([404, true]);
    const login = await ask('/login');
    expect([login.status, login.viaExpress]).to.deep.equal([200, true]);
    const post = await ask(path, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    expect(post.viaExpress).to.equal(true);
    expect(post.status).to.equal(422);
  });

  it('serves the merchant’s own pages (open and fixed amount) directly, each with its own amount', async () => {
    const open = await ask(`/${shop.handle}`);
    expect([open.status, open.viaExpress]).to.deep.equal([200, false]);
    expect(open.text).to.include('name="amount"');
    const fixed = await ask(`/${shop.handle}/7.50`);
    expect([fixed.status, fixed.viaExpress]).to.deep.equal([200, false]);
    expect(fixed.text).to.include('Pay €7.50').and.not.include('name="amount"');
    const other = await ask(`/${shop.handle}/8.25`);
    expect(other.text).to.include('Pay €8.25');
  });

  it('shows a change to the link at once (the rendered page is dropped with the lookups)', async () => {
    const l = await env.rt.services.links.create(shop, { type: 'amount', name: 'Before', amount: 500 });
    const url = `/${shop.handle}/${l.path}`;
    expect((await ask(url)).text).to.include('<h1>Before</h1>');
    await env.rt.services.links.update(shop, l.id, { name: 'After' });
    const after = await ask(url);
    expect(after.viaExpress).to.equal(false);
    expect(after.text).to.include('<h1>After</h1>').and.not.include('<h1>Before</h1>');
  });

  it('counts a request as unanswered only until it is answered, on either path (background work waits for none afterwards)', async () => {
    await Promise.all([ask(path), ask(path, { method: 'HEAD' }), ask(`${path}?c=x`), ask(`/${shop.handle}/no-such-link`), ask(path.toUpperCase())]);
    expect(unansweredRequests()).to.equal(0);
  });

  it('falls back to Express when the direct path fails: the lookups throw → the usual 503 page, never a half-sent answer', async () => {
    const l = await env.rt.services.links.create(shop, { type: 'amount', name: 'Outage', amount: 500 });
    const url = `/${shop.handle}/${l.path}`;
    // Drop the cached lookups, then make the database refuse.
    await env.rt.services.links.update(shop, l.id, { name: 'Outage page' });
    const db = env.rt.db as unknown as { client: { acquireConnection: () => Promise<unknown> } };
    const acquire = db.client.acquireConnection;
    db.client.acquireConnection = () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    try {
      const a = await ask(url);
      expect(a.status).to.equal(503);
      expect(a.viaExpress).to.equal(true);
    } finally {
      db.client.acquireConnection = acquire;
    }
    expect((await ask(url)).status).to.equal(200);
  });
});
