// The accounts feature's front door: what other features and the app may use of it.
export { memberActor, requireCapability, requireMerchant, safeNext } from './middleware.ts';
export { configurePassport } from './passport.ts';
export { createLoginLimiter, createResetLimiter } from './rate-limit.ts';
export type { LoginLimiter, LoginLimits, ResetLimiter, ResetLimits } from './rate-limit.ts';
export { createAccountService, TokenError, RESET_TTL_MS, INVITE_TTL_MS } from './service.ts';
export type { AccountService } from './service.ts';
export { accountRoutes } from './routes.ts';
export { accountSettingsRoutes } from './settings-routes.ts';
export { teamRoutes } from './team-routes.ts';
