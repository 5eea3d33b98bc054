import fs from 'node:fs';
import path from 'node:path';
import { hkdfSync, randomBytes } from 'node:crypto';

export interface Secrets {
  /** Signs session cookies. */
  sessionSecret: string;
  /** A purpose-bound key derived from the master secret (e.g. 'link-tokens'). */
  derive(purpose: string): Buffer;
}

export function secretsFrom(master: string): Secrets {
  return Object.freeze({
    sessionSecret: master,
    derive: (purpose: string) => Buffer.from(hkdfSync('sha256', master, 'paylink', purpose, 32)),
  });
}

/**
 * Embedded mode: generated once into <dataDir>/secrets.json with mode 0600 and reused after.
 * Scaled mode: SESSION_SECRET from the environment wins, so every process shares it.
 */
export function loadOrCreateSecrets(dataDir: string, fromEnv: string | null): Secrets {
  if (fromEnv) return secretsFrom(fromEnv);
  const file = path.join(dataDir, 'secrets.json');
  fs.mkdirSync(dataDir, { recursive: true });
  try {
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as { sessionSecret?: unknown };
    if (typeof stored.sessionSecret === 'string' && stored.sessionSecret.length >= 32) {
      fs.chmodSync(file, 0o600);
      return secretsFrom(stored.sessionSecret);
    }
    throw new Error(`${file} has no usable sessionSecret; delete it to generate a new one`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const sessionSecret = randomBytes(48).toString('base64url');
  // 'wx' fails if another process created it first; then read theirs.
  try {
    fs.writeFileSync(file, JSON.stringify({ sessionSecret, createdAt: new Date().toISOString() }, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateSecrets(dataDir, null);
    throw err;
  }
  return secretsFrom(sessionSecret);
}
