// The products feature's front door: what other features and the app may use of it.
export { productsRoutes } from './routes.ts';
export { createProductService, minorAmountSchema, productJson, recurringLabel } from './service.ts';
export type { Product, ProductService, Recurring, RecurringInterval } from './service.ts';
