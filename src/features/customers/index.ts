// The customers feature's front door: what other features and the app may use of it.
export { customersRoutes } from './routes.ts';
export { createCustomerService, customerJson } from './service.ts';
export type { Customer, CustomerService, CustomerSummary } from './service.ts';
export { normalizePhone } from './schemas.ts';
export { cleanLabel, createPaymentProfiles, paymentProfileJson } from './profiles.ts';
export type { PaymentProfile, PaymentProfiles } from './profiles.ts';
