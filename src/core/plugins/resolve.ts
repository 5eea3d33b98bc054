/**
 * Makes `paylink/plugin-api` and `paylink/plugin-testing` importable by any plugin, wherever it lives:
 * a folder outside this repository, or a package installed into the host's node_modules. Paylink is
 * not published to npm, so a plugin cannot depend on it; instead the host maps the subpaths of its own
 * package.json `exports` to its files, for every importer, and a plugin uses the host's zod through
 * the `z` that plugin-api re-exports.
 *
 * Two hooks, because Node resolves ES modules and CommonJS separately:
 * - ES modules: a `resolve` hook registered with `module.register` (Node ≥ 20.6, also 22 and 24). It
 *   rewrites the specifier and hands it on down the chain, so tsx's own hooks (registered earlier)
 *   still resolve and transform the .ts file — no short-circuit.
 * - CommonJS (a plugin package without `"type": "module"`, which tsx runs through require()): a
 *   wrapper around `Module._resolveFilename`, the only resolution seam Node 20 has for require.
 *
 * Both map to the same file, so built-ins (importing the file by path) and third-party plugins
 * (importing `paylink/plugin-api`) share one module instance in the ES module graph.
 */
import fs from 'node:fs';
import path from 'node:path';
import Module, { createRequire, register } from 'node:module';
import { fileURLToPath } from 'node:url';

const PACKAGE_JSON = new URL('../../../package.json', import.meta.url);
const REGISTERED = Symbol.for('paylink.pluginResolution');

/** `paylink/<subpath>` → file URL, for every subpath the host's package.json exports. */
export function pluginModuleUrls(): Record<string, string> {
  const pkg = JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')) as { name: string; exports?: Record<string, string> };
  const urls: Record<string, string> = {};
  for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
    if (subpath.startsWith('./') && typeof target === 'string') urls[`${pkg.name}/${subpath.slice(2)}`] = new URL(target, PACKAGE_JSON).href;
  }
  return urls;
}

// Runs on Node's loader thread, so it is plain JavaScript with its data handed over by `initialize`.
const ESM_HOOKS = `
let urls = {};
export async function initialize(data) { urls = data.urls; }
export async function resolve(specifier, context, nextResolve) {
  return nextResolve(Object.hasOwn(urls, specifier) ? urls[specifier] : specifier, context);
}`;

type ResolveFilename = (request: string, ...rest: unknown[]) => string;

/** Installs both hooks once per process (safe to call from every copy of this module and every load). */
export function registerPluginResolution(): void {
  const g = globalThis as { [REGISTERED]?: boolean };
  if (g[REGISTERED]) return;
  g[REGISTERED] = true;
  const urls = pluginModuleUrls();
  register(`data:text/javascript,${encodeURIComponent(ESM_HOOKS)}`, { data: { urls } });

  const paths = new Map(Object.entries(urls).map(([specifier, url]) => [specifier, fileURLToPath(url)]));
  const cjs = Module as unknown as { _resolveFilename: ResolveFilename };
  const original = cjs._resolveFilename;
  cjs._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]) {
    return original.call(this, paths.get(request) ?? request, ...rest);
  };
}

/**
 * The file to import for a plugin path: a package folder resolves to its entry as npm would (its
 * `exports`, through the package's own name, or `main`); a file, or a folder without package.json
 * (tsx finds its index.ts / index.js), stays as it is.
 */
export function pluginEntry(file: string): string {
  const manifest = path.join(file, 'package.json');
  if (!fs.existsSync(manifest)) return file;
  const pkg = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string; exports?: unknown };
  const require = createRequire(manifest);
  return pkg.exports !== undefined && pkg.name ? require.resolve(pkg.name) : require.resolve(file);
}
