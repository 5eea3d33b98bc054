import type { Drill } from './support.ts';
export const smtpDrill: Drill = { name: 'smtp', async run() { return []; } };
