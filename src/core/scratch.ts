/**
 * A throwaway install: a SQLite file and a data folder under the OS temp dir, and a configuration
 * pointing at them. The test harness and the plugin test kit (`paylink/plugin-testing`) build their
 * runtimes on it, so a plugin author's checks run on the same host the project's own tests use.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../config.ts';

/** A fresh, empty SQLite database file; `drop()` removes it. */
export function scratchSqliteDatabase(): { url: string; drop(): Promise<void> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-test-'));
  return { url: path.join(dir, 'paylink.db'), drop: async () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Test configuration with its own data folder: `env` is added to (and overrides) the defaults, and
 * must name the database (`DATABASE_URL`). `remove()` deletes the data folder.
 */
export function scratchConfig(env: Record<string, string>): { config: Readonly<Config>; remove(): void } {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-data-'));
  try {
    const config = loadConfig({
      NODE_ENV: 'test',
      SESSION_SECRET: 'test-session-secret-that-is-long-enough-0123456789',
      BASE_URL: 'http://pay.test',
      PAYLINK_DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      ...env,
    });
    return { config, remove: () => fs.rmSync(dataDir, { recursive: true, force: true }) };
  } catch (err) {
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}
