/**
 * Response compression with Node's zlib (brotli or gzip, as the client's Accept-Encoding prefers).
 * Used for rendered HTML (core/http.ts) and static files (core/assets.ts). Only what is worth it:
 * static files of at least MIN_COMPRESS_BYTES, pages of at least MIN_DYNAMIC_BYTES, never images.
 * A client that does not ask (no Accept-Encoding: benchmarks, health checks) pays one header lookup
 * and nothing else.
 */
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Below this, compression saves too little to be worth a header and a dictionary (static files, compressed once). */
export const MIN_COMPRESS_BYTES = 1024;
/**
 * Below this, a page made per request goes uncompressed. Measured on the pay page (1.8 KB, the hot
 * path): compressing it per request cost 150–250 µs of server CPU (gzip / brotli; the page itself
 * takes ~320 µs) to save ~1 KB, which changes nothing a customer notices — both fit the first TCP
 * round trip, and Lighthouse only flags savings over 1.4 KB. From 2.5 KB on, the saving passes that.
 */
export const MIN_DYNAMIC_BYTES = 2560;

/**
 * The encoding to answer with for an Accept-Encoding header: br, then gzip (the higher q wins, br on
 * a tie), else null (identity). A coding given q=0 is refused; `*` stands for any coding not named.
 */
export function pickEncoding(header: string | undefined): 'br' | 'gzip' | null {
  if (!header) return null;
  const q = new Map<string, number>();
  for (const part of header.toLowerCase().split(',')) {
    const [name, ...params] = part.trim().split(';');
    if (!name) continue;
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const value = qp ? Number(qp.slice(2)) : 1;
    q.set(name.trim(), Number.isFinite(value) ? value : 0);
  }
  const weight = (coding: string) => q.get(coding) ?? q.get('*') ?? 0;
  const br = weight('br');
  const gz = Math.max(weight('gzip'), q.get('x-gzip') ?? 0);
  if (br > 0 && br >= gz) return 'br';
  if (gz > 0) return 'gzip';
  return null;
}

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);
/**
 * Settings for bodies made per request: brotli quality 4 and gzip level 6 compress a page about as
 * well as the slowest settings (within a few %) at a fraction of the time.
 */
const brotliOptions = (bytes: number) => ({
  params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4, [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes },
});
const GZIP_OPTIONS = { level: 6 };
/**
 * Up to this size a body is compressed in place (~50–200 µs); a hand-off to libuv's thread pool
 * costs ~150 µs of CPU more than that. Larger pages go to the pool, so a long page never holds the
 * event loop for a millisecond.
 */
const SYNC_MAX_BYTES = 16 * 1024;

/**
 * The body to send for a text response made per request: compressed (with Content-Encoding set)
 * when the client accepts br or gzip and the body is worth it, else the text as it is. Sets
 * `Vary: Accept-Encoding` whenever the answer could have differed.
 */
export function compressedBody(req: IncomingMessage, res: ServerResponse, text: string): string | Buffer | Promise<Buffer> {
  // Bytes ≥ characters: a string shorter than the threshold in characters may still pass it in bytes,
  // but a short page is not worth measuring exactly.
  if (text.length < MIN_DYNAMIC_BYTES) return text;
  addVary(res, 'Accept-Encoding');
  const encoding = pickEncoding(req.headers['accept-encoding']);
  if (!encoding) return text;
  res.setHeader('Content-Encoding', encoding);
  if (text.length <= SYNC_MAX_BYTES) return encoding === 'br' ? zlib.brotliCompressSync(text, brotliOptions(text.length)) : zlib.gzipSync(text, GZIP_OPTIONS);
  return encoding === 'br' ? brotli(text, brotliOptions(text.length)) : gzip(text, GZIP_OPTIONS);
}

/** Adds `field` to the response's Vary header unless it is there already (as Express's res.vary does, on a plain response). */
export function addVary(res: ServerResponse, field: string): void {
  const prev = res.getHeader('Vary');
  const list = Array.isArray(prev) ? prev.join(', ') : prev === undefined ? '' : String(prev);
  if (!list) return void res.setHeader('Vary', field);
  if (list.trim() === '*' || list.toLowerCase().split(',').some((f) => f.trim() === field.toLowerCase())) return;
  res.setHeader('Vary', `${list}, ${field}`);
}
