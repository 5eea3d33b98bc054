// Payment providers per merchant: the front door of this feature.
export { createProviderSettingsService, providerPatchSchema, type ProviderSettingsService, type MerchantProvider, type ActiveProvider } from './service.ts';
