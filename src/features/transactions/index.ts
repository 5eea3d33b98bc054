// The transactions feature's front door: what other features and the app may use of it.
export { transactionsRoutes } from './routes.ts';
export { paymentStatusBadge } from './view.ts';
export type { PaymentBadge } from './view.ts';
