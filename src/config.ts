// The only reader of process.env. Everything else receives a frozen Config.
import path from 'node:path';
import { z } from 'zod';

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
  vonage: { apiKey: string | null; apiSecret: string | null; applicationId: string | null; privateKey: string | null; restHost: string | null; apiHost: string | null };
}

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

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL such as https://pay.example.com' });

const schema = z.object({
  NODE_ENV: z.preprocess(emptyToUndefined, z.enum(['development', 'production', 'test']).default('development')),
  PORT: z.preprocess(
    emptyToUndefined,
    z.coerce.number({ error: 'must be a port number' }).int('must be a whole number').min(0, 'must be 0–65535').max(65535, 'must be 0–65535').default(3000),
  ),
  HOST: z.preprocess(emptyToUndefined, z.string().default('0.0.0.0')),
  BASE_URL: z.preprocess(emptyToUndefined, httpUrl.optional()),
  DATABASE_URL: z.preprocess(emptyToUndefined, z.string().default('./data/paylink.db')),
  REDIS_URL: z.preprocess(
    emptyToUndefined,
    z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').optional(),
  ),
  REDIS_PREFIX: z.preprocess(emptyToUndefined, z.string().regex(/^[A-Za-z0-9:_-]+$/, 'letters, digits, : _ - only').default('paylink')),
  SESSION_SECRET: z.preprocess(emptyToUndefined, z.string().min(32, 'must be at least 32 characters').optional()),
  TRUST_PROXY: optionalString,
  PAYLINK_PLUGINS: optionalString,
  PAYLINK_DATA_DIR: z.preprocess(emptyToUndefined, z.string().default('./data')),
  LOG_LEVEL: z.preprocess(emptyToUndefined, z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info')),
  SMTP_URL: z.preprocess(emptyToUndefined, z.string().regex(/^smtps?:\/\//, 'must start with smtp:// or smtps://').optional()),
  MAIL_FROM: optionalString,
  VONAGE_API_KEY: optionalString,
  VONAGE_API_SECRET: optionalString,
  VONAGE_APPLICATION_ID: optionalString,
  VONAGE_PRIVATE_KEY: optionalString,
  VONAGE_REST_HOST: optionalString,
  VONAGE_API_HOST: optionalString,
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
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push({ variable: String(issue.path[0] ?? '?'), message: issue.message });
    }
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  const database = parseDatabase(e.DATABASE_URL, cwd);
  if (typeof database === 'string') problems.push({ variable: 'DATABASE_URL', message: database });
  const trustProxy = parseTrustProxy(e.TRUST_PROXY);
  if (trustProxy instanceof Error) problems.push({ variable: 'TRUST_PROXY', message: trustProxy.message });

  const pluginSettings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(env)) {
    const m = /^PAYLINK_PLUGIN_([A-Z0-9_]+)$/.exec(key);
    if (!m || value === undefined || value === '') continue;
    const id = m[1].toLowerCase().replace(/_/g, '-');
    try {
      pluginSettings[id] = JSON.parse(value);
    } catch {
      problems.push({ variable: key, message: 'must be a JSON object' });
    }
  }
  if (e.VONAGE_API_KEY && !e.VONAGE_API_SECRET) problems.push({ variable: 'VONAGE_API_SECRET', message: 'is required when VONAGE_API_KEY is set' });
  if (problems.length) throw new ConfigError(problems);

  const port = e.PORT;
  const baseUrl = (e.BASE_URL ?? `http://localhost:${port}`).replace(/\/+$/, '');
  const config: Config = {
    env: e.NODE_ENV,
    port,
    host: e.HOST,
    baseUrl,
    secureCookies: baseUrl.startsWith('https://'),
    database: database as DatabaseConfig,
    redisUrl: e.REDIS_URL ?? null,
    redisPrefix: e.REDIS_PREFIX,
    sessionSecret: e.SESSION_SECRET ?? null,
    trustProxy: trustProxy as boolean | number | string,
    plugins: (e.PAYLINK_PLUGINS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    pluginSettings,
    dataDir: path.resolve(cwd, e.PAYLINK_DATA_DIR),
    logLevel: e.LOG_LEVEL,
    smtpUrl: e.SMTP_URL ?? null,
    mailFrom: e.MAIL_FROM ?? null,
    vonage: {
      apiKey: e.VONAGE_API_KEY ?? null,
      apiSecret: e.VONAGE_API_SECRET ?? null,
      applicationId: e.VONAGE_APPLICATION_ID ?? null,
      privateKey: e.VONAGE_PRIVATE_KEY ?? null,
      restHost: e.VONAGE_REST_HOST ?? null,
      apiHost: e.VONAGE_API_HOST ?? null,
    },
  };
  return Object.freeze(config);
}
