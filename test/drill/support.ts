/**
 * What the fault drills share: private Redis and MariaDB servers on their own ports (children of the
 * drill, never the machine's shared ones), fault injection by signal, a Paylink server process, and
 * the report lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import supertest from 'supertest';
import { baseEnv, startServerProcess, type ServerProcess } from '../support/process.ts';
import { signUp, type Account } from '../support/harness.ts';

export interface Finding {
  drill: string;
  check: string;
  figure: string;
  pass: boolean;
}

/** One drill: its name, what it needs, and the checks it reports. */
export interface Drill {
  name: string;
  run(ctx: DrillContext): Promise<Finding[]>;
}

export interface DrillContext {
  /** Folders and processes to clean up when the drill ends, whatever happens. */
  defer(cleanup: () => Promise<void> | void): void;
  log(line: string): void;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A new folder under the system temp folder; with `ctx`, removed when the drill ends. */
export function tempDir(name: string, ctx?: DrillContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `paylink-drill-${name}-`));
  ctx?.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Waits until `fn` answers true, polling; throws naming `what` after `ms`. */
export async function until(what: string, fn: () => Promise<boolean> | boolean, ms = 60_000, every = 100): Promise<number> {
  const start = Date.now();
  for (;;) {
    try {
      if (await fn()) return Date.now() - start;
    } catch {
      // not yet
    }
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

async function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** A server process of our own that faults are injected into by signal. */
export interface Service {
  readonly url: string;
  readonly pid: number;
  /** SIGSTOP: the process keeps its sockets but answers nothing. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  stop(): Promise<void>;
}

function service(proc: ChildProcess, url: string, onStop: () => void = () => {}): Service {
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    url,
    pid: proc.pid!,
    pause: () => process.kill(proc.pid!, 'SIGSTOP'),
    resume: () => process.kill(proc.pid!, 'SIGCONT'),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        process.kill(proc.pid!, 'SIGCONT');
        proc.kill('SIGTERM');
        const killer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
      onStop();
    },
  };
}

/** redis-server on `port`, no persistence, as a child of this process. */
export async function startRedis(port: number): Promise<Service> {
  if (await portAnswers(port)) throw new Error(`port ${port} is taken: the drill needs it for its own Redis`);
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
  await until(`redis-server on ${port}`, () => portAnswers(port), 15_000);
  return service(proc, `redis://127.0.0.1:${port}`);
}

/**
 * A private MariaDB: a fresh data folder (mariadb-install-db), mariadbd on `port` without grant
 * tables (root, no password), as a child of this process. `url` names the database `paylink`.
 */
export async function startMariadb(port: number): Promise<Service & { admin(): Knex }> {
  if (await portAnswers(port)) throw new Error(`port ${port} is taken: the drill needs it for its own MariaDB`);
  const dir = tempDir('mariadb');
  const data = path.join(dir, 'data');
  const install = spawn('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, '--user=root', '--skip-test-db', '--auth-root-authentication-method=normal'], { stdio: 'ignore' });
  const code = await new Promise<number | null>((r) => install.once('exit', r));
  if (code !== 0) throw new Error(`mariadb-install-db exited with ${code}`);
  const proc = spawn(
    'mariadbd',
    ['--no-defaults', `--datadir=${data}`, `--port=${port}`, '--bind-address=127.0.0.1', `--socket=${path.join(dir, 'mariadb.sock')}`, '--skip-grant-tables', '--user=root', '--skip-log-bin', '--innodb-buffer-pool-size=128M', '--max-connections=500'],
    { stdio: 'ignore' },
  );
  const server = `mysql://root@127.0.0.1:${port}`;
  const quiet = { warn() {}, error() {}, debug() {}, deprecate() {} };
  const admin = () => knexFactory({ client: 'mysql2', connection: { uri: server } as never, pool: { min: 0, max: 2 }, log: quiet });
  await until(`mariadbd on ${port}`, async () => {
    const k = admin();
    try {
      await k.raw('CREATE DATABASE IF NOT EXISTS paylink CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci');
      return true;
    } finally {
      await k.destroy();
    }
  }, 60_000, 250);
  const s = service(proc, `${server}/paylink`, () => fs.rmSync(dir, { recursive: true, force: true }));
  return { ...s, admin: () => knexFactory({ client: 'mysql2', connection: { uri: `${server}/paylink` } as never, pool: { min: 0, max: 4 } }) };
}

export const SESSION_SECRET = 'drill-session-secret-that-is-long-enough-0123456789';

/** `node --import tsx src/server.ts` with `env` (plus a data folder of its own), listening on a free port. */
export async function startPaylink(env: Record<string, string>, ctx: DrillContext): Promise<ServerProcess> {
  const dataDir = env.PAYLINK_DATA_DIR ?? tempDir('data', ctx);
  const server = await startServerProcess(baseEnv({ NODE_ENV: 'production', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', PAYLINK_DATA_DIR: dataDir, ...env }));
  ctx.defer(async () => {
    if (server.proc.exitCode === null && server.proc.signalCode === null) await server.stop('SIGTERM');
  });
  return server;
}

/** A merchant signed up through the real form of a running server, with a link at `/handle/<path>` and an API key. */
export async function merchantOn(url: string, path: string): Promise<Account & { apiKey: string }> {
  const acct = await signUp(url as never);
  const created = await acct.agent.post('/app/settings/api-keys').type('form').send({ _csrf: acct.csrf, name: 'drill' });
  const secret = /pl_(?:live|test)_[A-Za-z0-9]+/.exec(created.text)?.[0];
  if (!secret) throw new Error(`could not create an API key (${created.status})`);
  const link = await supertest(url).post('/api/v1/links').set('Authorization', `Bearer ${secret}`).send({ type: 'amount', name: 'Drill', amount: 1500, path });
  if (link.status !== 201) throw new Error(`could not create the link (${link.status}): ${link.text.slice(0, 300)}`);
  return { ...acct, apiKey: secret };
}

/** Milliseconds as people read them. */
export const ms = (n: number) => (n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`);

export function quantile(values: number[], q: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Counts of HTTP statuses, e.g. "200×812 503×40". */
export function statusCounts(statuses: number[]): string {
  const counts = new Map<number, number>();
  for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s || 'timeout'}×${n}`).join(' ') || 'none';
}
