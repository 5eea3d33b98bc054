// The api-keys feature's front door: what other features and the app may use of it.
export { apiKeyJson, createApiKeyService } from './service.ts';
export type { ApiKeyService } from './service.ts';
