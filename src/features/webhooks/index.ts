// The webhooks feature's front door: what other features and the app may use of it.
export { apiWebhookRoutes } from './api.ts';
export { WEBHOOK_EVENTS, createDataBuilder, isWebhookEventType, webhookEventTypes } from './data.ts';
export type { DataBuilder, DataSources } from './data.ts';
export { webhookRoutes } from './routes.ts';
export { createSender, newSecret, sign } from './send.ts';
export type { SendRequest, SendResult, Sender, SenderOptions } from './send.ts';
export { DISABLE_AFTER_MS, RETRY_SCHEDULE_MS, ROTATION_OVERLAP_MS, attemptJson, createWebhookService, endpointJson, isPrivateHost, parseRetryAfter } from './service.ts';
export type { WebhookAttempt, WebhookEndpoint, WebhookService } from './service.ts';
