// The links feature's front door: what other features and the app may use of it.
export { linksRoutes } from './routes.ts';
export { LINK_SOURCES, conversionRate, createLinkService, remaining } from './service.ts';
export type { CreatedBy, Link, LinkService, LinkSource, RequestRef } from './service.ts';
export { createLinkState } from './state.ts';
export { redirectUrlFor } from './schemas.ts';
export { CUSTOM_FIELDS_MAX, FIELD_TYPES, parseCollect } from './collect.ts';
export { checkoutDraftFromForm, itemsDraftFromForm } from './draft.ts';
export type { CheckoutDraft } from './draft.ts';
export type { Collect, CustomField, CustomFieldType } from './collect.ts';
export type { ClaimLoss, HoldLoss, LinkRef, LinkState, PayableLinkRow, RequestLinkState } from './state.ts';
export { CUSTOM_AMOUNT_LABEL_MAX, CUSTOM_AMOUNT_LINE, ITEMS_MAX, QUANTITY_MAX, SUGGESTED_MAX, defaultChoice, isAdjustable, linkItemsFrom, planOf, priceOrder, quantityField, sections, subscriptionTerms } from './items.ts';
export type { CustomAmount, ItemProduct, ItemQuantity, LinkItem, OrderChoice, PricedOrder, SubscriptionTerms } from './items.ts';
