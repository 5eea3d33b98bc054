// The links feature's front door: what other features and the app may use of it.
export { tagNamesFrom } from './form.ts';
export { formErrors, linksRoutes } from './routes.ts';
export { conversionRate, createLinkService, remaining } from './service.ts';
export type { Link, LinkService } from './service.ts';
export { dateIn, dateTimeIn, one, pageParam, pageWindow } from './view.ts';
export type { Badge } from './view.ts';
