import type { Drill } from './support.ts';
export const workerKillDrill: Drill = { name: 'worker-kill', async run() { return []; } };
