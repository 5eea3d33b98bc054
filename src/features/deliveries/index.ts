// The deliveries feature's front door: what other features and the app may use of it.
export { createChannelDirectory } from './channels.ts';
export type { ChannelDirectory, ChannelInfo, ChannelOption, KeptNotice, Reachable } from './channels.ts';
export { templatesRoutes } from './routes.ts';
export { createDeliveryService, deliveryJson } from './service.ts';
export type { Delivery, DeliveryCounts, DeliveryService, MerchantNotice, QueueItem } from './service.ts';
export { createTemplateService } from './templates.ts';
export type { TemplateService } from './templates.ts';
export { deliveryRow } from './view.ts';
