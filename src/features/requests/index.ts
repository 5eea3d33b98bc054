// Payment requests: one payment asked of one customer at a short signed URL (API.md "Payment requests").
export { createRequestService, requestJson, statusOf } from './service.ts';
export { requestsRoutes } from './routes.ts';
export { statusBadge, titleOf } from './view.ts';
export type { LineItem, PaymentRequest, RequestService, RequestSource, RequestStatus } from './service.ts';
export { createRequestImports, IMPORT_TEMPLATE, REQUEST_IMPORT_COLUMNS, REQUEST_IMPORT_MAX_BYTES, REQUEST_IMPORT_MAX_ROWS } from './import.ts';
export type { ImportProgress, RequestImport, RequestImports } from './import.ts';
