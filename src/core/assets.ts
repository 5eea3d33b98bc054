/**
 * Static CSS and JavaScript under content-hashed URLs, compressed.
 *
 * `assets.url('/static/css/app.css')` → `/static/css/app.3f9a0c1d2e.css` (the first 10 hex digits of
 * the file's SHA-256): views write every stylesheet and script through it (`it.asset(…)`), so a
 * changed file gets a new URL and the old one may be cached for a year. The handler serves:
 *   - a hashed URL whose hash is the file's: `Cache-Control: public, max-age=31536000, immutable`;
 *   - the plain URL, or a hash that is not the file's (a page cached from before a deploy): the current
 *     file with a short cache (`shortMaxAge`), so nothing breaks and nothing stale sticks for long;
 * each with an ETag (304 on If-None-Match), brotli or gzip as the client's Accept-Encoding prefers
 * (both made once per file version, at the highest settings, and kept), identity otherwise, and
 * `Vary: Accept-Encoding`. Files under ~1 KB go uncompressed. Other files (images, fonts: never compressed) are left to
 * the next handler.
 *
 * With `watch` (development), a file's size and mtime are checked on use, so an edit shows at once
 * under a new hash; otherwise each file is read and hashed once, on first use.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import type { NextFunction, Request, Response } from 'express';
import { MIN_COMPRESS_BYTES, pickEncoding } from './compress.ts';

export interface AssetRoot {
  /** URL prefix, e.g. `/static` or `/static/vendor`. */
  prefix: string;
  /** Directory the prefix maps onto. */
  dir: string;
}

export interface AssetOptions {
  roots: AssetRoot[];
  /** Re-check files on use (development). Default false. */
  watch?: boolean;
  /** max-age (seconds) for plain or out-of-date URLs. Default 300. */
  shortMaxAge?: number;
}

/** What the handler compresses and hashes; anything else passes through. */
const TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

const HASH_LEN = 10;
const IMMUTABLE = 'public, max-age=31536000, immutable';
const HASHED = new RegExp(`^(.+)\\.([0-9a-f]{${HASH_LEN}})(\\.[a-z0-9]+)$`);

interface Entry {
  file: string;
  size: number;
  mtimeMs: number;
  body: Buffer;
  hash: string;
  etag: string;
  type: string;
  br?: Buffer;
  gzip?: Buffer;
}

/** The content hash a file gets in its URL (exported for tests and tools). */
export function contentHash(body: Buffer | string): string {
  return createHash('sha256').update(body).digest('hex').slice(0, HASH_LEN);
}

export function createAssets(opts: AssetOptions) {
  const roots = [...opts.roots].sort((a, b) => b.prefix.length - a.prefix.length).map((r) => ({ prefix: r.prefix.replace(/\/$/, ''), dir: path.resolve(r.dir) }));
  const shortCache = `public, max-age=${opts.shortMaxAge ?? 300}`;
  const entries = new Map<string, Entry>();
  const urls = new Map<string, string>();

  /** The file behind a plain URL path (inside its root; no dot segments, no hidden files), or null. */
  function fileOf(urlPath: string): string | null {
    const root = roots.find((r) => urlPath.startsWith(`${r.prefix}/`));
    if (!root) return null;
    const rel = urlPath.slice(root.prefix.length + 1);
    if (!rel || rel.split('/').some((seg) => !seg || seg.startsWith('.'))) return null;
    const file = path.resolve(root.dir, rel);
    return file.startsWith(root.dir + path.sep) ? file : null;
  }

  function load(file: string): Entry | null {
    const known = entries.get(file);
    if (known && !opts.watch) return known;
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
    } catch {
      return null;
    }
    if (!stat.isFile()) return null;
    if (known && known.size === stat.size && known.mtimeMs === stat.mtimeMs) return known;
    const body = fs.readFileSync(file);
    const hash = contentHash(body);
    const entry: Entry = { file, size: stat.size, mtimeMs: stat.mtimeMs, body, hash, etag: `"${hash}-${body.length}"`, type: TYPES[path.extname(file)] };
    entries.set(file, entry);
    return entry;
  }

  function encoded(entry: Entry, encoding: 'br' | 'gzip'): Buffer {
    if (encoding === 'br') {
      entry.br ??= zlib.brotliCompressSync(entry.body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: entry.body.length } });
      return entry.br;
    }
    entry.gzip ??= zlib.gzipSync(entry.body, { level: 9 });
    return entry.gzip;
  }

  return {
    /**
     * The content-hashed URL of a static file (`/static/css/app.css` → `/static/css/app.<hash>.css`);
     * the path unchanged when it names no file this serves.
     */
    url(urlPath: string): string {
      if (!opts.watch) {
        const known = urls.get(urlPath);
        if (known) return known;
      }
      const ext = path.extname(urlPath);
      const file = TYPES[ext] ? fileOf(urlPath) : null;
      const entry = file && load(file);
      if (!entry) return urlPath;
      const hashed = `${urlPath.slice(0, -ext.length)}.${entry.hash}${ext}`;
      urls.set(urlPath, hashed);
      return hashed;
    },

    /** Serves the files (GET and HEAD); anything it does not serve goes to `next`. */
    handler(req: Request, res: Response, next: NextFunction): void {
      if (req.method !== 'GET' && req.method !== 'HEAD') return next();
      // Mounted under a prefix (app.use('/static', …)) or not: the whole path either way.
      const urlPath = req.baseUrl + req.path;
      const ext = path.extname(urlPath);
      if (!TYPES[ext]) return next();
      let file = fileOf(urlPath);
      let entry = file && load(file);
      let asked: string | null = null;
      if (!entry) {
        const m = HASHED.exec(urlPath);
        if (!m) return next();
        file = fileOf(`${m[1]}${m[3]}`);
        entry = file && load(file);
        if (!entry) return next();
        asked = m[2];
      }
      const encoding = entry.body.length >= MIN_COMPRESS_BYTES ? pickEncoding(req.headers['accept-encoding']) : null;
      // One ETag per representation: a cache may hold the brotli and the identity copy side by side.
      const etag = encoding ? `${entry.etag.slice(0, -1)}-${encoding}"` : entry.etag;
      res.setHeader('Content-Type', entry.type);
      res.setHeader('Cache-Control', asked === entry.hash ? IMMUTABLE : shortCache);
      res.setHeader('ETag', etag);
      res.setHeader('Vary', 'Accept-Encoding');
      if (req.headers['if-none-match'] === etag) {
        res.statusCode = 304;
        return void res.end();
      }
      const body = encoding ? encoded(entry, encoding) : entry.body;
      if (encoding) res.setHeader('Content-Encoding', encoding);
      res.setHeader('Content-Length', body.length);
      res.statusCode = 200;
      res.end(req.method === 'HEAD' ? undefined : body);
    },
  };
}

export type Assets = ReturnType<typeof createAssets>;
