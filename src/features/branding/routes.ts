/**
 * Public branding assets, both content-addressed and so cached for good:
 * - `/assets/logos/<sha256>.webp`: a merchant's logo as re-encoded on upload (never the upload itself);
 * - `/assets/brand/<rrggbb>.css`: a colour's custom properties, for documents that cannot carry a
 *   nonce'd <style> (the link form's live preview, an iframe `srcdoc` under the dashboard's CSP).
 * No session, no database for the CSS; one indexed read per logo (browsers keep it a year).
 */
import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { NotFoundError } from '../../core/errors.ts';
import { payBranding } from './resolve.ts';

type Deps = Pick<AppDeps, 'branding'>;

const IMMUTABLE = 'public, max-age=31536000, immutable';

/** `--brand`, `--on-brand`, `--brand-ink` for a colour (the same values a pay page's own <style> sets). */
export function brandCss(color: string): string {
  const b = payBranding({ brandColor: color, logoUrl: null, buttonStyle: 'rounded', buttonLabel: 'pay' });
  return `:root{--brand:${b.color};--on-brand:${b.onColor};--brand-ink:${b.ink}}`;
}

export function brandingAssetRoutes(rt: Deps): express.Router {
  const router = express.Router();

  router.get('/assets/logos/:file', async (req, res) => {
    const m = /^([0-9a-f]{64})\.webp$/.exec(String(req.params.file));
    if (!m) throw new NotFoundError();
    const logo = await rt.branding.logo(m[1]);
    if (!logo) throw new NotFoundError();
    res.set({
      // Only ever the type we encoded; nosniff (helmet) keeps browsers to it.
      'Content-Type': 'image/webp',
      'Content-Length': String(logo.bytes.length),
      'Cache-Control': IMMUTABLE,
      'Content-Disposition': 'inline; filename="logo.webp"',
      // Opened on its own, it is an image and nothing else.
      'Content-Security-Policy': "default-src 'none'; sandbox",
      'Cross-Origin-Resource-Policy': 'cross-origin',
      ETag: `"${m[1]}"`,
    });
    res.end(req.method === 'HEAD' ? undefined : logo.bytes);
  });

  router.get('/assets/brand/:file', (req, res) => {
    const m = /^([0-9a-f]{6})\.css$/.exec(String(req.params.file));
    if (!m) throw new NotFoundError();
    res.set({ 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': IMMUTABLE });
    res.send(brandCss(`#${m[1]}`));
  });

  return router;
}
