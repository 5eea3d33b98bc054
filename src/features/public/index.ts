// The public feature's front door: what other features and the app may use of it.
export { publicRoutes } from './routes.ts';
export type { DirectPayPageApp } from './pay-page.ts';
export { linkPreviewRoutes } from './preview.ts';
