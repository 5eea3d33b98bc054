import type { Drill } from './support.ts';
export const diskFullDrill: Drill = { name: 'disk-full', async run() { return []; } };
