/**
 * Client addresses: parsed once into IPv4 or IPv6 (an IPv4-mapped IPv6 address, `::ffff:1.2.3.4` or
 * `::ffff:102:304`, is the IPv4 client it carries), for the analytics mask and the rate limits' keys.
 */
import net from 'node:net';

export type ParsedIp = { v: 4; octets: number[] } | { v: 6; hextets: number[] };

/** `ip` as IPv4 octets or IPv6 groups; null when it is not an address (a zone `%eth0` is dropped). */
export function parseIp(ip: string | undefined | null): ParsedIp | null {
  if (!ip) return null;
  let addr = ip.trim();
  const zone = addr.indexOf('%');
  if (zone >= 0) addr = addr.slice(0, zone);
  const kind = net.isIP(addr);
  if (kind === 4) return { v: 4, octets: addr.split('.').map(Number) };
  if (kind !== 6) return null;
  const hextets = expandIpv6(addr);
  if (hextets.slice(0, 5).every((h) => h === 0) && hextets[5] === 0xffff) {
    return { v: 4, octets: [hextets[6] >> 8, hextets[6] & 255, hextets[7] >> 8, hextets[7] & 255] };
  }
  return { v: 6, hextets };
}

/** The IPv6 network of the first `bits` bits of `hextets`, in canonical form (`2001:db8:85a3::`). */
export function ipv6Network(hextets: readonly number[], bits: number): string {
  const kept = hextets.map((h, i) => {
    const from = i * 16;
    if (bits >= from + 16) return h;
    if (bits <= from) return 0;
    return h & (0xffff << (16 - (bits - from)));
  });
  // WHATWG URL parsing writes the canonical form (zero groups compressed, lower case).
  return new URL(`http://[${kept.map((h) => h.toString(16)).join(':')}]/`).hostname.slice(1, -1);
}

/**
 * How much of an IPv6 address a rate limit counts as one client. One subscriber is given a whole /64
 * or more (often a /56 or /48) and may use any address in it, so a limit per address limits nobody;
 * /56 is the common choice of rate limiters (express-rate-limit's default).
 */
export const LIMIT_IPV6_BITS = 56;

/**
 * The key a per-client rate limit counts `ip` under: an IPv4 address itself (also when it arrives
 * IPv4-mapped on a dual-stack socket: those must not share one IPv6 network's budget), an IPv6
 * address's /56 network (`2001:db8:1200::/56`), anything else as it came ("unknown" when absent).
 */
export function limitKey(ip: string | undefined | null): string {
  const parsed = parseIp(ip);
  if (!parsed) return ip?.trim() || 'unknown';
  if (parsed.v === 4) return parsed.octets.join('.');
  return `${ipv6Network(parsed.hextets, LIMIT_IPV6_BITS)}/${LIMIT_IPV6_BITS}`;
}

/** The eight 16-bit groups of a valid IPv6 address (an embedded dotted IPv4 tail included). */
function expandIpv6(addr: string): number[] {
  let text = addr.toLowerCase();
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number);
    text = text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const fill = tail === null ? [] : Array(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((h) => parseInt(h, 16));
}
