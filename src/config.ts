// The only reader of process.env. Everything else receives a frozen Config.
import path from 'node:path';
import { z } from 'zod';
import { parseMaxAmounts, type MaxAmounts } from './core/money.ts';
import { DEFAULT_DB_TIMEOUTS, type DbTimeouts } from './core/db.ts';

export type DatabaseConfig =
  | { client: 'sqlite'; filename: string }
  | { client: 'mysql'; url: string };

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  baseUrl: string;
  /** True when BASE_URL is https: cookies get Secure and the __Host- prefix. */
  secureCookies: boolean;
  database: DatabaseConfig;
  /** MySQL/MariaDB deadlines (DB_ACQUIRE_TIMEOUT_MS, DB_STALL_TIMEOUT_MS, DB_QUERY_TIMEOUT_MS); see core/db.ts. */
  dbTimeouts: DbTimeouts;
  redisUrl: string | null;
  /** Namespace for every Redis key, so several installs (or test suites) can share one Redis. */
  redisPrefix: string;
  sessionSecret: string | null;
  trustProxy: boolean | number | string;
  plugins: string[];
  /** Raw per-plugin settings from PAYLINK_PLUGIN_<ID> (JSON), validated by each plugin's schema. */
  pluginSettings: Record<string, unknown>;
  dataDir: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  smtpUrl: string | null;
  mailFrom: string | null;
  /** PAYLINK_WEBHOOKS_ALLOW_PRIVATE=1: webhook endpoints may be on loopback/private addresses (and http://). Development and tests only. */
  webhooksAllowPrivate?: boolean;
  /** PAYLINK_MAX_AMOUNT: the most one amount may be, per currency (default: 1,000,000 major units). Null: the defaults. */
  maxAmounts?: MaxAmounts | null;
  /** PAYLINK_SIGNUP: who may create an account — anyone (`open`), only with an invitation (`invite`), nobody but the CLI (`closed`). The first account of a fresh install is always allowed. */
  signup: SignupPolicy;
  vonage: { apiKey: string | null; apiSecret: string | null; applicationId: string | null; privateKey: string | null; restHost: string | null; apiHost: string | null; whatsappFrom: string | null };
}

export type SignupPolicy = 'open' | 'invite' | 'closed';

export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(
      'Invalid configuration:\n' +
        problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n'),
    );
    this.name = 'ConfigError';
  }
}

const emptyToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optionalString = z.preprocess(emptyToUndefined, z.string().optional());

/** A whole number of milliseconds, at least `min` (0 allowed when min is 0: no limit). */
const milliseconds = (fallback: number, min: number) =>
  z.preprocess(
    emptyToUndefined,
    z
      .string()
      .trim()
      .regex(/^\d{1,9}$/, `must be a whole number of milliseconds${min ? ` (at least ${min})` : ' (0: no limit)'}`)
      .transform(Number)
      .refine((n) => n >= min, `must be at least ${min} ms`)
      .default(fallback),
  );

const httpUrl = z
  .url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL such as https://pay.example.com' })
  .refine((v) => {
    if (!URL.canParse(v)) return true; // already reported by z.url
    const u = new URL(v);
    return !u.username && !u.password && !u.search && !u.hash;
  }, 'must be an origin (optionally with a path), without credentials, ?query or #fragment');

const schema = z.object({
  NODE_ENV: z.preprocess(emptyToUndefined, z.enum(['development', 'production', 'test']).default('development')),
  PORT: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .trim()
      .regex(/^\d{1,5}$/, 'must be a port number (0–65535)')
      .transform(Number)
      .refine((n) => n <= 65535, 'must be a port number (0–65535)')
      .default(3000),
  ),
  HOST: z.preprocess(emptyToUndefined, z.string().default('0.0.0.0')),
  BASE_URL: z.preprocess(emptyToUndefined, httpUrl.optional()),
  // Default: paylink.db inside PAYLINK_DATA_DIR (./data/paylink.db unless the data dir moves).
  DATABASE_URL: z.preprocess(emptyToUndefined, z.string().optional()),
  DB_ACQUIRE_TIMEOUT_MS: milliseconds(DEFAULT_DB_TIMEOUTS.acquireMs, 100),
  DB_STALL_TIMEOUT_MS: milliseconds(DEFAULT_DB_TIMEOUTS.stallMs, 100),
  DB_QUERY_TIMEOUT_MS: milliseconds(DEFAULT_DB_TIMEOUTS.statementMs, 0),
  REDIS_URL: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .refine((v) => URL.canParse(v) && Boolean(new URL(v).hostname), 'must be a URL such as redis://127.0.0.1:6379')
      .optional(),
  ),
  REDIS_PREFIX: z.preprocess(emptyToUndefined, z.string().regex(/^[A-Za-z0-9:_-]+$/, 'letters, digits, : _ - only').default('paylink')),
  SESSION_SECRET: z.preprocess(emptyToUndefined, z.string().min(32, 'must be at least 32 characters').optional()),
  TRUST_PROXY: optionalString,
  PAYLINK_PLUGINS: optionalString,
  PAYLINK_DATA_DIR: z.preprocess(emptyToUndefined, z.string().default('./data')),
  LOG_LEVEL: z.preprocess(emptyToUndefined, z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info')),
  SMTP_URL: z.preprocess(emptyToUndefined, z.string().regex(/^smtps?:\/\//, 'must start with smtp:// or smtps://').optional()),
  MAIL_FROM: optionalString,
  PAYLINK_WEBHOOKS_ALLOW_PRIVATE: z.preprocess(emptyToUndefined, z.enum(['0', '1'], { error: 'must be 1 (allow) or 0 (default: refuse)' }).default('0')),
  PAYLINK_MAX_AMOUNT: optionalString,
  PAYLINK_SIGNUP: z.preprocess(
    (v) => (typeof v === 'string' ? emptyToUndefined(v.trim().toLowerCase()) : v),
    z.enum(['open', 'invite', 'closed'], { error: 'must be open (anyone may sign up), invite (only with an invitation) or closed (accounts are created with the CLI)' }).default('open'),
  ),
  VONAGE_API_KEY: optionalString,
  VONAGE_API_SECRET: optionalString,
  VONAGE_APPLICATION_ID: optionalString,
  VONAGE_PRIVATE_KEY: optionalString,
  VONAGE_REST_HOST: optionalString,
  VONAGE_API_HOST: optionalString,
  VONAGE_WHATSAPP_FROM: optionalString,
});

function parseDatabase(url: string, cwd: string): DatabaseConfig | string {
  if (/^mysql2?:\/\//.test(url)) {
    try {
      const u = new URL(url);
      if (!u.pathname || u.pathname === '/') return 'must name a database, e.g. mysql://user:pass@host:3306/paylink';
      return { client: 'mysql', url };
    } catch {
      return 'is not a valid mysql:// URL';
    }
  }
  if (url.startsWith('sqlite://')) {
    const file = url.slice('sqlite://'.length);
    if (!file) return 'sqlite:// needs a file path, e.g. sqlite:///var/lib/paylink/paylink.db';
    return { client: 'sqlite', filename: file === ':memory:' ? file : path.resolve(cwd, file) };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return 'must be a SQLite file path, sqlite:///path or mysql://…';
  return { client: 'sqlite', filename: url === ':memory:' ? url : path.resolve(cwd, url) };
}

function parseTrustProxy(v: string | undefined): boolean | number | string | Error {
  if (v === undefined) return false;
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^\d+$/.test(v)) return Number(v);
  if (/^[0-9a-fA-F.:/, a-z]+$/.test(v)) return v; // IPs/subnets or names like "loopback"
  return new Error('must be true, false, a hop count, or a list of trusted addresses');
}

/** Reads and validates configuration; throws one ConfigError listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Readonly<Config> {
  const problems: { variable: string; message: string }[] = [];
  const problem = (variable: string, message: string) => {
    if (!problems.some((p) => p.variable === variable && p.message === message)) problems.push({ variable, message });
  };
  // Validate everything before reporting, so one start attempt shows every mistake.
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problem(String(issue.path[0] ?? '?'), issue.message);
  }
  const e = parsed.success ? parsed.data : null;

  const dataDir = path.resolve(cwd, (emptyToUndefined(env.PAYLINK_DATA_DIR) as string | undefined) ?? './data');
  const rawDatabase = (emptyToUndefined(env.DATABASE_URL) as string | undefined)?.trim();
  const database = rawDatabase ? parseDatabase(rawDatabase, cwd) : ({ client: 'sqlite', filename: path.join(dataDir, 'paylink.db') } as const);
  if (typeof database === 'string') problem('DATABASE_URL', database);
  const trustProxy = parseTrustProxy(emptyToUndefined(env.TRUST_PROXY) as string | undefined);
  if (trustProxy instanceof Error) problem('TRUST_PROXY', trustProxy.message);

  const pluginSettings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(env)) {
    const m = /^PAYLINK_PLUGIN_([A-Z0-9_]+)$/.exec(key);
    if (!m || value === undefined || value.trim() === '') continue;
    const id = m[1].toLowerCase().replace(/_/g, '-');
    let settings: unknown;
    try {
      settings = JSON.parse(value);
    } catch {
      problem(key, 'must be a JSON object, e.g. {"apiKey":"…"} (it is not valid JSON)');
      continue;
    }
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
      problem(key, 'must be a JSON object, e.g. {"apiKey":"…"}');
      continue;
    }
    pluginSettings[id] = settings;
  }
  const rawMax = emptyToUndefined(env.PAYLINK_MAX_AMOUNT) as string | undefined;
  const maxAmounts = rawMax === undefined ? null : parseMaxAmounts(rawMax);
  if (maxAmounts && !maxAmounts.ok) problem('PAYLINK_MAX_AMOUNT', maxAmounts.message);
  if (env.VONAGE_API_KEY?.trim() && !env.VONAGE_API_SECRET?.trim()) problem('VONAGE_API_SECRET', 'is required when VONAGE_API_KEY is set');
  // Scaled mode runs several processes (often on several hosts): they must all sign cookies and
  // derive tokens with the same secret, so it cannot be generated per process into a local file.
  if (typeof database !== 'string' && database.client === 'mysql' && !emptyToUndefined(env.SESSION_SECRET)) {
    problem('SESSION_SECRET', 'is required with a mysql:// DATABASE_URL (every process must share it); generate one with `openssl rand -base64 48`');
  }
  if (problems.length || !e) throw new ConfigError(problems);

  const port = e.PORT;
  const baseUrl = (e.BASE_URL ?? `http://localhost:${port}`).replace(/\/+$/, '');
  const config: Config = {
    env: e.NODE_ENV,
    port,
    host: e.HOST,
    baseUrl,
    secureCookies: baseUrl.startsWith('https://'),
    database: database as DatabaseConfig,
    dbTimeouts: { acquireMs: e.DB_ACQUIRE_TIMEOUT_MS, stallMs: e.DB_STALL_TIMEOUT_MS, statementMs: e.DB_QUERY_TIMEOUT_MS },
    redisUrl: e.REDIS_URL ?? null,
    redisPrefix: e.REDIS_PREFIX,
    sessionSecret: e.SESSION_SECRET ?? null,
    trustProxy: trustProxy as boolean | number | string,
    plugins: (e.PAYLINK_PLUGINS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    pluginSettings,
    dataDir,
    logLevel: e.LOG_LEVEL,
    smtpUrl: e.SMTP_URL ?? null,
    mailFrom: e.MAIL_FROM ?? null,
    webhooksAllowPrivate: e.PAYLINK_WEBHOOKS_ALLOW_PRIVATE === '1',
    maxAmounts: maxAmounts?.ok ? maxAmounts.value : null,
    signup: e.PAYLINK_SIGNUP,
    vonage: {
      apiKey: e.VONAGE_API_KEY ?? null,
      apiSecret: e.VONAGE_API_SECRET ?? null,
      applicationId: e.VONAGE_APPLICATION_ID ?? null,
      privateKey: e.VONAGE_PRIVATE_KEY ?? null,
      restHost: e.VONAGE_REST_HOST ?? null,
      apiHost: e.VONAGE_API_HOST ?? null,
      whatsappFrom: e.VONAGE_WHATSAPP_FROM ?? null,
    },
  };
  return Object.freeze(config);
}
