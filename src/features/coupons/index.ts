// The coupons feature's front door: what other features and the app may use of it.
export { couponsRoutes } from './routes.ts';
export { createCouponService, couponJson, redemptionJson, discountLabel, discountOf, codeKey, CODE_MAX } from './service.ts';
export type { Coupon, CouponService, Redemption, Quote, HoldRequest } from './service.ts';
