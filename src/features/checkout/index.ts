// The checkout feature's front door: what other features and the app may use of it.
export { createPaymentQueries, paymentJson } from './payments.ts';
export { formatPaymentMethod } from './payment-method.ts';
export type { PaymentFilters, PaymentQueries, PaymentView } from './payments.ts';
export { createPluginCheckoutServices } from './plugin-services.ts';
export { createProviderReports } from './provider-reports.ts';
export { REFUNDABLE, createRefundService, refundJson } from './refunds.ts';
export type { Refund, RefundService } from './refunds.ts';
export { NoSlotError, createCheckoutService, minutesUntil } from './service.ts';
export { receiptKeys } from './receipt-keys.ts';
export { createSavedProfiles } from './profiles.ts';
export type { SavedProfiles } from './profiles.ts';
export type { CheckoutService, CollectedInput, Discount, PayableLink, Payment, PaymentStatus, ReceiptDetails } from './service.ts';
export { outcomeForCustomer, outcomeForMerchant } from './outcomes.ts';
export type { PaymentOutcome } from './service.ts';
