// The actions feature's front door: what other features and the app may use of it.
export { createActionForms } from './form.ts';
export type { ActionFormState } from './form.ts';
export { actionCustomer, createPluginCustomerServices } from './plugin-customers.ts';
export { afterPaymentJson, createActionService } from './service.ts';
export type { ActionService, AfterPaymentPlan, LinkAction } from './service.ts';
