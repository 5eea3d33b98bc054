// The reminders feature's front door: what other features and the app may use of it.
export { FREQUENCIES, FREQUENCY_LABELS, REMINDERS_MAX } from './schedule.ts';
export type { Frequency } from './schedule.ts';
export { createReminderService, planJson, upcoming } from './service.ts';
export type { ReminderPlan, ReminderService } from './service.ts';
