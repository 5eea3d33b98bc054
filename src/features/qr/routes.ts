/**
 * QR code images of a link, encoding exactly its public URL (BASE_URL/handle/path):
 *   GET …/links/:id/qr.png?size=200   (100–2000 px square; default 200)
 *   GET …/links/:id/qr.svg?size=200   (scalable; size sets its nominal width)
 * `?download=1` adds a Content-Disposition attachment with a readable filename. Images carry a
 * strong ETag over (format, size, URL) and are privately cacheable; a changed path or handle changes
 * the ETag. Every lookup is scoped to the merchant: another tenant's or a deleted link is a 404.
 */
import express, { type Request, type Response } from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { ValidationError } from '../../core/errors.ts';
import type { Merchant } from '../merchants/index.ts';
import { QR_DEFAULT_SIZE, QR_MAX_SIZE, QR_MIN_SIZE, qrEtag, qrPng, qrSvg, type QrFormat } from './qr.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'links'>;

const TYPES: Record<QrFormat, string> = { png: 'image/png', svg: 'image/svg+xml; charset=utf-8' };

/** `?size=` → pixels; absent → the default; anything but a whole number in range → 422 (field `size`). */
export function parseQrSize(value: unknown): number {
  if (value === undefined) return QR_DEFAULT_SIZE;
  if (typeof value === 'string' && /^\d{1,5}$/.test(value)) {
    const n = Number(value);
    if (n >= QR_MIN_SIZE && n <= QR_MAX_SIZE) return n;
  }
  throw new ValidationError(
    [{ field: 'size', code: 'invalid_size', message: `Size must be a whole number of pixels from ${QR_MIN_SIZE} to ${QR_MAX_SIZE}.` }],
    `The QR code size must be a whole number of pixels from ${QR_MIN_SIZE} to ${QR_MAX_SIZE}.`,
  );
}

function wantsDownload(value: unknown): boolean {
  return value === '1' || value === 'true';
}

/** Where a link's QR images live, for pages and JSON that link to them. */
export function qrPaths(linkId: string): { dashboard: { png: string; svg: string }; api: { png: string; svg: string } } {
  const id = encodeURIComponent(linkId);
  return {
    dashboard: { png: `/app/links/${id}/qr.png`, svg: `/app/links/${id}/qr.svg` },
    api: { png: `/api/v1/links/${id}/qr.png`, svg: `/api/v1/links/${id}/qr.svg` },
  };
}

/**
 * Answers a GET for the QR image of `url` (`?size=`, `?download=1`, ETag/304): a link's and a
 * payment request's images alike. `stem` names the downloaded file.
 */
export async function sendQr(req: Request, res: Response, format: QrFormat, url: string, stem: string): Promise<void> {
  const size = parseQrSize(req.query.size);
  res.set('Cache-Control', 'private, no-cache');
  res.set('ETag', qrEtag(format, url, size));
  if (wantsDownload(req.query.download)) {
    const safe = stem.replace(/[^\w.-]+/g, '-');
    const filename = format === 'png' && size !== QR_DEFAULT_SIZE ? `${safe}-${size}.png` : `${safe}.${format}`;
    res.set('Content-Disposition', `attachment; filename="${filename}"`);
  }
  res.type(TYPES[format]);
  if (req.fresh) {
    res.status(304).end();
    return;
  }
  res.send(format === 'png' ? qrPng(url, size) : Buffer.from(await qrSvg(url, size)));
}

function qrHandler(rt: Deps, format: QrFormat, merchantOf: (req: Request, res: Response) => Merchant) {
  return async (req: Request, res: Response): Promise<void> => {
    // The size is checked before any read: a bad one is a 422 whoever asks.
    parseQrSize(req.query.size);
    const merchant = merchantOf(req, res);
    const link = await rt.links.get(merchant, String(req.params.id));
    await sendQr(req, res, format, rt.links.urlFor(link, merchant), `${merchant.handle}-${link.path ?? link.id}-qr`);
  };
}

function mount(router: express.Router, rt: Deps, merchantOf: (req: Request, res: Response) => Merchant, ...before: express.RequestHandler[]): void {
  router.get('/links/:id/qr.png', ...before, qrHandler(rt, 'png', merchantOf));
  router.get('/links/:id/qr.svg', ...before, qrHandler(rt, 'svg', merchantOf));
}

/** For the JSON API (mounted under /api/v1 after authentication): scoped to the API key's merchant. */
export function apiQrRoutes(rt: Deps): express.Router {
  const router = express.Router();
  // Bearer keys of different merchants may share a client's HTTP cache.
  mount(router, rt, (_req, res) => res.locals.apiMerchant!, (_req, res, next) => {
    res.vary('Authorization');
    next();
  });
  return router;
}

/** For the dashboard (mounted under /app in the session stack): scoped to the logged-in merchant. */
export function dashboardQrRoutes(rt: Deps): express.Router {
  const router = express.Router();
  // The merchant with its actor: an agent gets the codes of their own links only.
  mount(router, rt, (_req, res) => res.locals.merchant);
  return router;
}
