// The health feature's front door: what other features and the app may use of it.
export { healthRoutes } from './routes.ts';
