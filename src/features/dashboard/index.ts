// The dashboard feature's front door: what other features and the app may use of it.
export { dashboardRoutes } from './routes.ts';
