// The api feature's front door: what other features and the app may use of it.
export { apiRoutes } from './routes.ts';
