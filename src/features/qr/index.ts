// The qr feature's front door: what other features and the app may use of it.
export { apiQrRoutes, dashboardQrRoutes, qrPaths, sendQr } from './routes.ts';
