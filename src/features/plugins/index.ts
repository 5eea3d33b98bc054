// The plugins feature's front door: what other features and the app may use of it.
export { pluginRoutes } from './routes.ts';
