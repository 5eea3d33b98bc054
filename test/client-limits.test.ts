// Per-client rate limits count an IPv6 client by its /56 network (one subscriber may use any of its
// addresses), an IPv4 client by its address — also when it arrives IPv4-mapped on a dual-stack
// socket, where a /56 of `::ffff:a.b.c.d` would put every IPv4 client in one bucket.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { useEnv } from './support/harness.ts';
import { apiClient, apiMerchant } from './support/api.ts';
import { limitKey, parseIp } from '../src/core/ip.ts';

describe('limitKey', () => {
  it('keys IPv4 by the address and IPv6 by its /56 network', () => {
    expect(limitKey('203.0.113.9')).to.equal('203.0.113.9');
    expect(limitKey('2001:db8:1:2::10')).to.equal('2001:db8:1::/56');
    expect(limitKey('2001:0DB8:0001:00ff:ffff:ffff:ffff:ffff')).to.equal('2001:db8:1::/56');
    expect(limitKey('2001:db8:1:100::1')).to.equal('2001:db8:1:100::/56');
    expect(limitKey('fe80::1%eth0')).to.equal('fe80::/56');
  });

  it('keys an IPv4-mapped address (dotted or hex) as the IPv4 client it carries, never as ::/56', () => {
    expect(limitKey('::ffff:203.0.113.9')).to.equal('203.0.113.9');
    expect(limitKey('::FFFF:cb00:7109')).to.equal('203.0.113.9');
    expect(limitKey('::ffff:198.51.100.7')).to.not.equal(limitKey('::ffff:203.0.113.9'));
  });

  it('passes anything else through, and says "unknown" for no address', () => {
    expect(limitKey(undefined)).to.equal('unknown');
    expect(limitKey('')).to.equal('unknown');
    expect(limitKey('not an address')).to.equal('not an address');
    expect(parseIp('999.1.1.1')).to.equal(null);
  });
});

forEachTarget('client rate limits by network', (target) => {
  // TRUST_PROXY: the test speaks for client addresses through X-Forwarded-For.
  const env = useEnv(target, { env: { TRUST_PROXY: 'true' }, checkoutLimits: { perIp: { points: 2, durationSec: 600 } } });

  const checkout = async (url: string, from: string) => (await supertest(env.app).post(url).set('X-Forwarded-For', from).type('form').send({ name: 'Ann Example', email: 'ann@example.test' })).status;

  it('checkouts from any addresses of one /56 share the limit; another network and IPv4 clients have their own', async () => {
    const m = await apiMerchant(env, 'Networks');
    const link = await env.rt.services.links.create(m.merchant, { type: 'amount', name: 'Ticket', amount: 1_000 });
    const url = `/${m.handle}/${link.path}`;
    expect([await checkout(url, '2001:db8:5:10::1'), await checkout(url, '2001:db8:5:20::abcd')]).to.deep.equal([303, 303]);
    // A third address of the same /56 (another /64 in it) is over the limit.
    expect(await checkout(url, '2001:db8:5:ff:1:2:3:4')).to.equal(429);
    // The next /56 is another client.
    expect(await checkout(url, '2001:db8:5:100::1')).to.equal(303);
    // IPv4-mapped clients are IPv4 clients: two of them do not share a budget.
    for (const from of ['::ffff:203.0.113.1', '::ffff:203.0.113.1', '::ffff:198.51.100.1']) expect(await checkout(url, from)).to.equal(303);
    expect(await checkout(url, '203.0.113.1')).to.equal(429);
  });

  it('"Send me a new link" on an expired request counts against the same limit: over it, the 429 page and no new request', async () => {
    const m = await apiMerchant(env, 'Refreshes');
    const call = apiClient(env.app, m.secret);
    const made = await call('post', '/payment_requests', { amount: 900, currency: 'EUR', channels: ['email'], allow_refresh: true, expires_in: 60, customer: { name: 'Ida', email: 'ida@example.test' } }).expect(201);
    const path = new URL(made.body.url as string).pathname;
    env.clock.advance(60_001);
    const requests = async () => Number((await env.rt.db('payment_requests').count({ n: '*' }))[0].n);
    const before = await requests();
    // Two checkout attempts from this network use up its budget.
    const link = await env.rt.services.links.create(m.merchant, { type: 'amount', name: 'Ticket', amount: 1_000 });
    for (let i = 0; i < 2; i++) expect(await checkout(`/${m.handle}/${link.path}`, '2001:db8:7:1::1')).to.equal(303);
    const over = await supertest(env.app).post(`${path}/refresh`).set('X-Forwarded-For', '2001:db8:7:2::1');
    expect(over.status).to.equal(429);
    expect(Number(over.headers['retry-after'])).to.be.within(1, 600);
    expect(await requests()).to.equal(before);
    // Another network may.
    expect((await supertest(env.app).post(`${path}/refresh`).set('X-Forwarded-For', '2001:db8:8::1')).status).to.equal(201);
    expect(await requests()).to.equal(before + 1);
  });
});
