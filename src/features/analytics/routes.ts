import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import type { Renderer } from '../../core/http.ts';
import type { LiveSignal } from '../../core/live.ts';
import type { Merchant } from '../merchants/index.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'links' | 'live'>;

/** At most one update a second per open page: a burst of views costs each page one re-read. */
export const UPDATE_EVERY_MS = 1_000;
/** A comment line now and then, so proxies and load balancers keep an idle stream open. */
export const KEEP_ALIVE_MS = 25_000;

/** Dashboard analytics endpoints (mounted under /app): the live stream of a link page. */
export function analyticsRoutes(rt: Deps, _render: Renderer): express.Router {
  const router = express.Router();

  /**
   * Server-sent events for one link page (htmx-ext-sse): `event: update` when a view is recorded or a
   * payment moves, and the page re-reads what it shows. Signals carry nothing the page displays, so
   * the stream needs no per-signal access check beyond the link being this merchant's.
   */
  router.get('/links/:id/live', async (req, res) => {
    const merchant: Merchant = res.locals.merchant;
    const link = await rt.links.get(merchant, String(req.params.id));

    let sent = 0;
    let cooling: NodeJS.Timeout | null = null;
    let pending = false;
    const update = () => {
      sent += 1;
      res.write(`event: update\nid: ${sent}\ndata: changed\n\n`);
      cooling = setTimeout(() => {
        cooling = null;
        if (pending) {
          pending = false;
          update();
        }
      }, UPDATE_EVERY_MS);
    };
    const onSignal = (signal: LiveSignal) => {
      // A signal without a link (a failed or authorized payment) may be this link's: refresh.
      if (signal.linkId !== null && signal.linkId !== link.id) return;
      if (cooling) pending = true;
      else update();
    };

    res.status(200).set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
    rt.live.track(res);
    const unlisten = rt.live.listen(merchant.key, onSignal);
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), KEEP_ALIVE_MS);
    keepAlive.unref();
    res.once('close', () => {
      unlisten();
      clearInterval(keepAlive);
      if (cooling) clearTimeout(cooling);
    });
    // The id makes a reconnecting browser send Last-Event-ID, which says it may have missed changes.
    res.write('retry: 3000\nid: 0\n\n');
    // A reconnection (after a restart or a network blip): refresh at once.
    if (req.get('Last-Event-ID') !== undefined) update();
  });

  return router;
}
