// JSON API: /coupons (percent_off | amount_off + currency, validity, max_redemptions) and their redemptions.
import type express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { couponJson, redemptionJson } from '../coupons/index.ts';
import { crudRoutes, listJson, merchantOf } from './common.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'coupons'>;

export function apiCouponRoutes(rt: Deps): express.Router {
  const { coupons } = rt;
  const router = crudRoutes({ path: 'coupons', object: 'coupon', service: coupons, list: (key, q) => coupons.list(key, q), toJson: couponJson });
  router.get('/coupons/:id/redemptions', async (req, res) => {
    const merchant = merchantOf(res);
    const coupon = await coupons.get(merchant.key, String(req.params.id));
    res.json(await listJson(await coupons.redemptions(merchant.key, coupon.id, req.query), (items) => items.map((r) => redemptionJson(r, coupon.id))));
  });
  return router;
}
