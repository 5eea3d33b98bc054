import type { Drill } from './support.ts';
export const databaseDrill: Drill = { name: 'database', async run() { return []; } };
