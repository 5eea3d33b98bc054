// What a pay-page view keeps about its visitor (DESIGN.md privacy rules), as pure functions: masked
// IPs, browser and OS from the user agent, bots and prefetches left out, referers without queries,
// sealed view ids, and the retention cut-off date.
import { expect } from 'chai';
import { UserAgentCache, agentLabel, cleanReferer, describeUserAgent, isPrefetch, maskIp } from '../src/features/analytics/visitor.ts';
import { monthsBefore } from '../src/features/analytics/service.ts';
import { idSealer } from '../src/core/sealed-ids.ts';
import { BOTS, BROWSERS } from './support/user-agents.ts';

describe('analytics: masking IP addresses', () => {
  const cases: [string, string | undefined | null, string | null][] = [
    ['IPv4 keeps three octets', '192.168.1.20', '192.168.1.xxx'],
    ['IPv4 with surrounding spaces', ' 10.0.0.7 ', '10.0.0.xxx'],
    ['IPv6 keeps its first 48 bits', '2001:db8:85a3:8d3:1319:8a2e:370:7348', '2001:db8:85a3::/48'],
    ['IPv6 in upper case, compressed', '2001:DB8:85A3::1', '2001:db8:85a3::/48'],
    ['IPv6 compressed inside the kept bits', '2001:db8::1', '2001:db8::/48'],
    ['IPv6 written out with leading zeros', '2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:db8::/48'],
    ['IPv6 with a zone id', 'fe80::1ff:fe23:4567:890a%eth0', 'fe80::/48'],
    ['IPv6 loopback', '::1', '::/48'],
    ['IPv6 with an IPv4 tail (not mapped)', '2001:db8:85a3::192.168.1.20', '2001:db8:85a3::/48'],
    ['IPv4-mapped IPv6, dotted', '::ffff:192.168.1.20', '192.168.1.xxx'],
    ['IPv4-mapped IPv6, dotted, upper case', '::FFFF:203.0.113.9', '203.0.113.xxx'],
    ['IPv4-mapped IPv6, hex', '::ffff:c0a8:114', '192.168.1.xxx'],
    ['IPv4-mapped IPv6, written out', '0:0:0:0:0:ffff:c0a8:0114', '192.168.1.xxx'],
    ['IPv4-mapped IPv6, written out with a dotted tail', '0:0:0:0:0:ffff:192.168.1.20', '192.168.1.xxx'],
    ['IPv4-mapped IPv6 with a zone id', '::ffff:127.0.0.1%lo', '127.0.0.xxx'],
    ['garbage', 'not-an-ip', null],
    ['three octets', '1.2.3', null],
    ['an octet over 255', '256.1.1.1', null],
    ['nine IPv6 groups', '2001:db8:1:2:3:4:5:6:7', null],
    ['an IPv6 address in brackets', '[2001:db8::1]', null],
    ['empty', '', null],
    ['missing', undefined, null],
    ['null', null, null],
  ];
  for (const [label, ip, masked] of cases) {
    it(`${label}: ${JSON.stringify(ip)} → ${JSON.stringify(masked)}`, () => {
      expect(maskIp(ip)).to.equal(masked);
    });
  }

  it('never keeps more than the network: no masked IPv6 carries bits past the 48th', () => {
    for (let i = 0; i < 50; i++) {
      const groups = Array.from({ length: 8 }, () => Math.floor(Math.random() * 0x10000).toString(16));
      const masked = maskIp(groups.join(':'))!;
      expect(masked).to.match(/\/48$/);
      const kept = masked.slice(0, -3);
      expect(new URL(`http://[${kept}]/`).hostname).to.equal(new URL(`http://[${groups.slice(0, 3).join(':')}::]/`).hostname);
    }
  });
});

describe('analytics: browsers and operating systems', () => {
  for (const b of BROWSERS) {
    it(`${b.name} → ${b.label} (${b.device})`, () => {
      const agent = describeUserAgent(b.ua);
      expect(agent).to.deep.equal({ browser: b.browser, os: b.os, device: b.device, bot: false });
      expect(agentLabel(agent)).to.equal(b.label);
    });
  }

  it('labels what it cannot name plainly', () => {
    expect(agentLabel({ browser: null, os: null })).to.equal('Unknown browser');
    expect(agentLabel({ browser: 'Chrome', os: null })).to.equal('Chrome / unknown OS');
    expect(agentLabel({ browser: null, os: 'macOS' })).to.equal('Unknown browser / Mac');
  });

  for (const [name, ua] of BOTS) {
    it(`knows ${name} is no person`, () => {
      expect(describeUserAgent(ua).bot).to.equal(true);
    });
  }

  it('parses each distinct user agent once (the cache answers the same result object)', () => {
    const cache = new UserAgentCache();
    const first = cache.describe(BROWSERS[0].ua);
    expect(cache.describe(BROWSERS[0].ua)).to.equal(first);
    expect(cache.describe(BROWSERS[1].ua)).not.to.equal(first);
    expect(cache.describe(undefined)).to.equal(cache.describe(''));
  });

  it('stays bounded: past its size the oldest entry is parsed again', () => {
    const cache = new UserAgentCache(2);
    const a = cache.describe(BROWSERS[0].ua);
    cache.describe(BROWSERS[1].ua);
    cache.describe(BROWSERS[2].ua);
    const again = cache.describe(BROWSERS[0].ua);
    expect(again).to.deep.equal(a);
    expect(again).not.to.equal(a);
  });
});

describe('analytics: speculative loads', () => {
  const cases: [Record<string, string>, boolean][] = [
    [{ 'sec-purpose': 'prefetch' }, true],
    [{ 'sec-purpose': 'prefetch;prerender' }, true],
    [{ 'sec-purpose': 'prefetch;anonymous-client-ip' }, true],
    [{ purpose: 'prefetch' }, true],
    [{ 'x-moz': 'prefetch' }, true],
    [{ 'x-purpose': 'preview' }, true],
    [{ 'x-purpose': 'Preview' }, true],
    [{}, false],
    [{ 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate' }, false],
  ];
  for (const [headers, prefetch] of cases) {
    it(`${JSON.stringify(headers)} is ${prefetch ? '' : 'not '}a prefetch`, () => {
      expect(isPrefetch(headers)).to.equal(prefetch);
    });
  }
});

describe('analytics: referers', () => {
  const cases: [string | undefined, string | null][] = [
    ['https://news.example.com/story/42?utm_source=x&token=secret#comments', 'https://news.example.com/story/42'],
    ['https://www.google.com/', 'https://www.google.com'],
    ['https://www.google.com/?q=cake', 'https://www.google.com'],
    ['https://user:password@example.com/private?x=1', 'https://example.com/private'],
    ['http://localhost:8080/a/b', 'http://localhost:8080/a/b'],
    ['android-app://com.google.android.gm/', null],
    ['javascript:alert(1)', null],
    ['not a url', null],
    ['', null],
    [undefined, null],
  ];
  for (const [referer, kept] of cases) {
    it(`${JSON.stringify(referer)} → ${JSON.stringify(kept)}`, () => {
      expect(cleanReferer(referer)).to.equal(kept);
    });
  }

  it('cuts a very long referer to the column’s 500 characters', () => {
    expect(cleanReferer(`https://example.com/${'a'.repeat(1_000)}`)).to.have.length(500);
  });
});

describe('analytics: sealed view ids', () => {
  const sealer = idSealer(Buffer.alloc(32, 7), 'vw');
  const other = idSealer(Buffer.alloc(32, 8), 'vw');

  it('round-trips integer keys through opaque vw_ ids', () => {
    for (const key of [1, 2, 3, 1_000_000, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      const id = sealer.seal(key);
      expect(id).to.match(/^vw_[A-Za-z0-9_-]{22}$/);
      expect(sealer.open(id)).to.equal(key);
    }
    expect(sealer.seal(1)).not.to.equal(sealer.seal(2));
  });

  it('opens nothing it did not seal: tampered, truncated, foreign, or another secret’s ids', () => {
    const id = sealer.seal(42);
    const flip = (i: number) => id.slice(0, i) + (id[i] === 'A' ? 'B' : 'A') + id.slice(i + 1);
    for (let i = 3; i < id.length; i++) expect(sealer.open(flip(i)), `changed at ${i}`).to.equal(null);
    // The last character carries 2 bits of the block and 4 spare ones: no other spelling opens.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (const c of alphabet.replace(id.at(-1)!, '')) expect(sealer.open(id.slice(0, -1) + c), `last character ${c}`).to.equal(null);
    expect(sealer.open(id.slice(0, -1))).to.equal(null);
    expect(sealer.open(`${id}A`)).to.equal(null);
    expect(sealer.open(id.replace('vw_', 'pay_'))).to.equal(null);
    expect(sealer.open(`vw_${'!'.repeat(22)}`)).to.equal(null);
    expect(sealer.open('')).to.equal(null);
    expect(other.open(id)).to.equal(null);
  });
});

describe('analytics: retention cut-off', () => {
  const cases: [string, number, string][] = [
    ['2026-03-31T12:00:00.000Z', 1, '2026-02-28T12:00:00.000Z'],
    ['2028-03-31T12:00:00.000Z', 1, '2028-02-29T12:00:00.000Z'],
    ['2026-03-15T08:30:00.000Z', 1, '2026-02-15T08:30:00.000Z'],
    ['2026-01-31T00:00:00.000Z', 13, '2024-12-31T00:00:00.000Z'],
    ['2026-05-31T23:59:59.999Z', 3, '2026-02-28T23:59:59.999Z'],
    ['2026-03-02T09:00:00.000Z', 12, '2025-03-02T09:00:00.000Z'],
    ['2026-03-02T09:00:00.000Z', 0, '2026-03-02T09:00:00.000Z'],
  ];
  for (const [now, months, cutoff] of cases) {
    it(`${months} month(s) before ${now} is ${cutoff}`, () => {
      expect(monthsBefore(new Date(now), months).toISOString()).to.equal(cutoff);
    });
  }
});
