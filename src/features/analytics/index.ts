// The analytics feature's front door: what other features and the app may use of it.
export { dailyChart } from './chart.ts';
export { ViewRecorder } from './recorder.ts';
export { addHourlyStats, countPayment, countRefund, hourOf } from './rollups.ts';
export { analyticsRoutes } from './routes.ts';
export { createAnalytics, viewJson } from './service.ts';
export type { ActivityItem, Analytics, LinkView } from './service.ts';
export { ACTIVITY_ID, ACTIVITY_PER_PAGE, LIVE_TRIGGER_ID, activityHref, activityPanel, activityRows, limitCard, linkMetrics, readActivityQuery } from './view.ts';
export type { ActivityQuery } from './view.ts';
