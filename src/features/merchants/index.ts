// The merchants feature's front door: what other features and the app may use of it.
export { RESERVED_HANDLES, VIEW_RETENTION, colorSchema, currencyOptions, currencySchema, emailSchema, localeOptions, passwordSchema, timezoneOptions, viewRetentionOptions } from './schemas.ts';
export { createMerchantService, merchantJson, settingsValues, toPluginMerchant } from './service.ts';
export type { Merchant, MerchantService, User } from './service.ts';
export { capText, memberName, parseCap, parseRole } from './team.ts';
export type { UserRef } from './service.ts';
