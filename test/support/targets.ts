/**
 * The suite runs once per target: always embedded SQLite, and MariaDB/MySQL + Redis when
 * TEST_DATABASE_URL (mysql://…) and TEST_REDIS_URL are set. With PAYLINK_REQUIRE_SERVICES=1 a missing
 * variable fails the run instead of silently testing less.
 */
export interface Target {
  name: 'sqlite' | 'mariadb';
  /** mysql:// server URL whose database part is replaced by a fresh database per suite. */
  mysqlUrl: string | null;
  redisUrl: string | null;
}

function resolveTargets(env = process.env): Target[] {
  const targets: Target[] = [{ name: 'sqlite', mysqlUrl: null, redisUrl: null }];
  const mysqlUrl = env.TEST_DATABASE_URL || null;
  const redisUrl = env.TEST_REDIS_URL || null;
  const required = env.PAYLINK_REQUIRE_SERVICES === '1';
  if (required && (!mysqlUrl || !redisUrl)) {
    throw new Error('PAYLINK_REQUIRE_SERVICES=1 but TEST_DATABASE_URL (mysql://…) and TEST_REDIS_URL (redis://…) are not both set');
  }
  if (mysqlUrl && !/^mysql2?:\/\//.test(mysqlUrl)) throw new Error(`TEST_DATABASE_URL must be a mysql:// URL, got ${mysqlUrl}`);
  if (mysqlUrl || redisUrl) {
    if (!mysqlUrl || !redisUrl) throw new Error('set both TEST_DATABASE_URL and TEST_REDIS_URL to test the scaled mode');
    targets.push({ name: 'mariadb', mysqlUrl, redisUrl });
  }
  return targets;
}

export const TARGETS = resolveTargets();

/** Declares `describe(title [target])` once per target. */
export function forEachTarget(title: string, fn: (target: Target) => void): void {
  for (const target of TARGETS) describe(`${title} [${target.name}]`, () => fn(target));
}

export const MARIADB_TARGET: Target | undefined = TARGETS.find((t) => t.name === 'mariadb');
