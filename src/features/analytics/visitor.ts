/**
 * What a pay-page view records about its visitor, under DESIGN.md's privacy rules: a masked IP, the
 * browser and OS (never the raw user-agent string), and where they came from (origin and path only).
 */
import type { IncomingHttpHeaders } from 'node:http';
import UAParser from 'ua-parser-js';
import { ipv6Network, parseIp } from '../../core/ip.ts';

/**
 * IPv4 keeps three octets (`192.168.1.xxx`); IPv6 keeps its first 48 bits, written as the network
 * they name (`2001:db8:85a3::/48`); an IPv4-mapped IPv6 address is masked as the IPv4 it carries.
 * Anything else is null: an unparseable address is not stored at all.
 */
export function maskIp(ip: string | undefined | null): string | null {
  const parsed = parseIp(ip);
  if (!parsed) return null;
  if (parsed.v === 4) return `${parsed.octets.slice(0, 3).join('.')}.xxx`;
  return `${ipv6Network(parsed.hextets, 48)}/48`;
}

export interface VisitorAgent {
  /** "Chrome", "Safari", "Firefox", "Edge", …; null when unknown. */
  browser: string | null;
  /** "macOS", "iOS", "Windows", "Android", "Linux", …; null when unknown. */
  os: string | null;
  /** "desktop", "mobile", "tablet", … */
  device: string;
  /** A crawler, link unfurler, monitor or script: not a person looking at the page. */
  bot: boolean;
}

const BROWSER_NAMES: Record<string, string> = {
  'Mobile Safari': 'Safari',
  'Mobile Firefox': 'Firefox',
  'Chrome Headless': 'Chrome',
  'Chrome WebView': 'Chrome',
  'Android Browser': 'Android',
  'Samsung Browser': 'Samsung Internet',
  'Opera Mobi': 'Opera',
  'Opera Touch': 'Opera',
  'Edge': 'Edge',
};
/** Linux distributions that name themselves in the user agent (Firefox on Ubuntu…) are all "Linux" to a merchant. */
const LINUX_DISTROS = ['Ubuntu', 'Kubuntu', 'Debian', 'Fedora', 'Mint', 'Arch', 'Manjaro', 'SUSE', 'openSUSE', 'Red Hat', 'CentOS', 'Gentoo', 'elementary OS', 'Raspbian', 'Deepin', 'Slackware'];
const OS_NAMES: Record<string, string> = {
  'Mac OS': 'macOS',
  'Chromium OS': 'ChromeOS',
  'Chrome OS': 'ChromeOS',
  ...Object.fromEntries(LINUX_DISTROS.map((d) => [d, 'Linux'])),
};

/**
 * Crawlers, unfurlers (Slack, WhatsApp, iMessage, social networks), uptime monitors, headless
 * browsers and HTTP libraries. An empty user agent is no browser either.
 */
const BOT =
  /bot\b|bot\/|crawl|spider|slurp|mediapartners|facebookexternalhit|facebookcatalog|embedly|quora link preview|outbrain|pinterest|vkshare|w3c_validator|whatsapp|telegram|skypeuripreview|bitlybot|discord|slack|linkedin|redditbot|applebot|bingpreview|preview|headlesschrome|phantomjs|lighthouse|pingdom|uptime|monitor|statuscake|curl\/|wget\/|python-|httpie|go-http-client|java\/|okhttp|axios\/|node-fetch|undici|^node(\/[\d.]+)?$|libwww|scrapy|feedfetcher|^mozilla\/5\.0$/i;

/** Parsing a user agent is the largest single cost of a view (~60 µs): results are kept per string. */
export class UserAgentCache {
  private readonly entries = new Map<string, VisitorAgent>();
  constructor(private readonly max = 2_000) {}

  describe(ua: string | undefined): VisitorAgent {
    const key = (ua ?? '').slice(0, 512);
    let hit = this.entries.get(key);
    if (hit) return hit;
    hit = describeUserAgent(key);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, hit);
    return hit;
  }
}

export function describeUserAgent(ua: string): VisitorAgent {
  if (!ua.trim()) return { browser: null, os: null, device: 'desktop', bot: true };
  const r = new UAParser(ua).getResult();
  const browser = r.browser.name ? (BROWSER_NAMES[r.browser.name] ?? r.browser.name) : null;
  const os = r.os.name ? (OS_NAMES[r.os.name] ?? r.os.name) : null;
  // Cubot is a phone maker, not a crawler: its model names ("Cubot Note 7") end in "bot".
  return { browser, os, device: r.device.type ?? 'desktop', bot: BOT.test(ua.replace(/\bcubot\b/gi, '')) };
}

/** The browser/OS pair as the dashboard shows it: "Chrome / Mac", "Safari / iOS". */
export function agentLabel(view: { browser: string | null; os: string | null }): string {
  const os = view.os === 'macOS' ? 'Mac' : view.os;
  if (!view.browser && !os) return 'Unknown browser';
  return `${view.browser ?? 'Unknown browser'} / ${os ?? 'unknown OS'}`;
}

/**
 * Speculative loads are not views: link prefetch and prerender (`Sec-Purpose`, `Purpose`), Firefox's
 * `X-Moz: prefetch` and Safari's `X-Purpose: preview`.
 */
export function isPrefetch(headers: IncomingHttpHeaders): boolean {
  const purpose = headers['sec-purpose'] ?? headers['purpose'] ?? headers['x-purpose'] ?? headers['x-moz'];
  return typeof purpose === 'string' && /prefetch|prerender|preview/i.test(purpose);
}

/** The referer's origin and path (no query or fragment: they can carry tokens), or null. */
export function cleanReferer(referer: string | undefined): string | null {
  if (!referer) return null;
  try {
    const u = new URL(referer);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    return `${u.origin}${u.pathname === '/' ? '' : u.pathname}`.slice(0, 500);
  } catch {
    return null;
  }
}
