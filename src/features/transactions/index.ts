// The transactions feature's front door: what other features and the app may use of it.
export { transactionsRoutes } from './routes.ts';
