// The settings feature's front door: what other features and the app may use of it.
export { settingsRoutes } from './routes.ts';
