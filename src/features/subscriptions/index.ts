// The subscriptions feature's front door: what other features and the app may use of it.
export { createSubscriptionService, subscriptionJson, addInterval, planLabel, receiptNote, SUBSCRIPTION_STATUSES } from './service.ts';
export type { Subscription, SubscriptionService, SubscriptionStatus, SubscriptionView } from './service.ts';
export { createPluginSubscriptionServices } from './plugin-services.ts';
export { subscriptionsRoutes } from './routes.ts';
