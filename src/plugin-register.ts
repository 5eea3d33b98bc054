/**
 * Preload for tools run outside the host (a plugin's own tests, scripts): makes `paylink/plugin-api`
 * and `paylink/plugin-testing` resolve to this checkout. Load it after tsx:
 *   node --import tsx --import /path/to/paylink/src/plugin-register.ts node_modules/mocha/bin/mocha.js
 * The host itself needs no preload: it registers the same resolution before loading plugins.
 */
import { registerPluginResolution } from './core/plugins/resolve.ts';

registerPluginResolution();
