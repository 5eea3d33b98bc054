// Payment requests: one payment asked of one customer at a short signed URL (API.md "Payment requests").
export { createRequestService, requestJson, statusOf } from './service.ts';
export { requestsRoutes } from './routes.ts';
export { statusBadge, titleOf } from './view.ts';
export type { PaymentRequest, RequestService, RequestSource, RequestStatus } from './service.ts';
