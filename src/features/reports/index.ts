// Reports (Reports → Reconciliation) and payment requests' audit trails: the feature's front door.
export { MAX_RANGE_DAYS, createReportService, readRange, summaryJson, thisMonth } from './service.ts';
export type { Bucket, CurrencyTotals, ReportRange, ReportRow, ReportService, Summary } from './service.ts';
export { trailJson } from './trail.ts';
export type { TrailEntry, TrailType } from './trail.ts';
export { reportsRoutes } from './routes.ts';
