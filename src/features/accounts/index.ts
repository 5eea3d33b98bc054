// The accounts feature's front door: what other features and the app may use of it.
export { requireMerchant, safeNext } from './middleware.ts';
export { configurePassport } from './passport.ts';
export { createLoginLimiter } from './rate-limit.ts';
export type { LoginLimiter, LoginLimits } from './rate-limit.ts';
export { accountRoutes } from './routes.ts';
