import type { Runtime, Services } from '../runtime.ts';

/**
 * What routers are built from: the runtime's parts and its services side by side. A router takes a
 * `Pick<AppDeps, …>` of exactly what it uses (`Pick<AppDeps, 'links' | 'clock'>`), never the whole runtime.
 */
export type AppDeps = Services & Omit<Runtime, 'services' | 'startBackground' | 'close'>;

export function appDeps(rt: Runtime): AppDeps {
  return { ...rt, ...rt.services };
}
