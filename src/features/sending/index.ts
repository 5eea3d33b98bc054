// The sending feature's front door: what other features and the app may use of it.
export { linkPageSending, sendingRoutes } from './routes.ts';
export { createSendingService } from './service.ts';
export type { SendResult, SendingService } from './service.ts';
export { LinkTokens, SHORT_RANDOM_CHARS } from './tokens.ts';
