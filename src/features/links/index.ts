// The links feature's front door: what other features and the app may use of it.
export { linksRoutes } from './routes.ts';
export { conversionRate, createLinkService, remaining } from './service.ts';
export type { Link, LinkService } from './service.ts';
export { createLinkState } from './state.ts';
export { redirectUrlFor } from './schemas.ts';
export type { ClaimLoss, HoldLoss, LinkRef, LinkState, PayableLinkRow, RequestLinkState } from './state.ts';
