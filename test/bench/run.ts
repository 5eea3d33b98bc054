/**
 * `npm run bench`: pay-page throughput and latency against two baselines measured in the same run,
 * and link analytics at a million views.
 *
 * The HTTP targets below run on this Node and on Node 24 side by side (BENCH_NODE24=0: this Node
 * only): .ci/node24 installs Node 24 from the npm registry into a cache folder and keeps a copy of
 * the checkout with node_modules built for it; each target is started once per Node, all of them in
 * the same interleaved rounds, and every ratio is taken against the baselines of the same Node.
 * Targets per Node: pay page / bare node:http ≥ 0.15 on Node 20, ≥ 0.30 on Node 24 (issue 15), pay
 * page p99 ≤ 1.2× the Express hello-world's p99, pay page / Express ≥ 0.60. The p99s are compared
 * after the rounds in BENCH_PAIRS pairs of short back-to-back rounds of the page and the Express
 * hello-world (alternating which goes first), and the check reads the median of the pairs' ratios —
 * the p99 of a single round is mostly the few stalls that happened to fall in it.
 * BENCH_P99_CONTROL_MS=N adds a negative control: an Express hello-world whose event loop stalls N ms
 * every BENCH_P99_CONTROL_EVERY_MS (100) ms (spin.ts), paired with the plain one.
 *
 * Servers run in child processes (pinned to the last CPU when there are ≥ 2; the measured processes of reminders, webhooks and requests unpinned); the load generator
 * (autocannon, in this process, pinned to the other CPUs) drives each with 50 connections: a
 * warm-up, then the measured seconds in interleaved rounds (bare, Express, SQLite, MariaDB, bare…),
 * each target keeping its best round, so a burst of other work on the machine hits one round of
 * one target rather than a whole target. Server CPU time per request is printed as a steadier
 * cross-check. Targets:
 *   1. bare node:http hello-world         2. Express 5 hello-world
 *   3. Paylink pay page on SQLite          4. Paylink pay page on MariaDB + Redis (if reachable)
 * Paylink runs as in production (NODE_ENV=production, LOG_LEVEL=warn) on a fresh database seeded
 * with one merchant and one amount link; the merchant takes payments through Stripe (BENCH_STRIPE).
 * What Stripe costs a pay page: the SQLite server also serves the same page of a second merchant on
 * the sandbox only, and after the rounds the two pages are compared in BENCH_PAIRS (12) pairs of
 * BENCH_PAIR_SECONDS (1.5 s) back-to-back rounds, alternating which goes first; the median of the
 * pairs' ratios is the check (with Stripe / sandbox only ≥ 0.95). Sharing the process, the two pages
 * differ only by the merchant's provider: two processes also differ by CPU placement and memory
 * (an A/A pair of servers read 0.85–1.0). As a cross-check, a fifth target serves the sandbox
 * merchant's page from a server of its own (measured right after the Stripe page in every round,
 * then paired the same way). BENCH_STRIPE_CONTROL_US=N adds a negative control: a third merchant on
 * Stripe whose pages cost N µs more per request (spin.ts), paired with the sandbox merchant's page.
 *
 * Analytics (analytics.ts), on a fresh SQLite file — or a fresh MariaDB database + Redis when
 * BENCH_DATABASE_URL is a mysql:// server URL: seeds one link with BENCH_VIEWS views over 90 days
 * (multi-row inserts, with the matching counters and hourly rollups) and 300 payments, and one link
 * with none; then, logged in as the merchant, times sequential requests for the link page and its
 * Views tab at page 1 and page 5,000 on both links (p95 ≤ 50 ms and ≤ 2× the empty link's). It
 * times the analytics services directly, profiles each page's queries and prints the query plan of
 * the Views tab's page 5,000. Two more targets join the interleaved rounds above: the pay page of the
 * seeded database with view recording (browser user agents, so every request is a view) and the same
 * page with recording off (recording/without ≥ 0.90; recording/bare node:http as the pay-page targets above). Afterwards
 * the recording server shuts down gracefully and the recorded rows must equal the link's counter and
 * rollups (no view lost).
 *
 * Reminders (reminders.ts), on its own fresh SQLite file or MariaDB database (the same choice as
 * analytics: BENCH_DATABASE_URL): seeds BENCH_REMINDERS due reminder plans (default 100,000) and half
 * as many due in a week, then in a fresh process times the sweep (claim + queue) and the handoff of
 * every delivery to channel-outbox (aim ≤ 5 s together), the longest event-loop block meanwhile
 * (≤ 20 ms) and peak memory, and checks each due plan was sent exactly once (exits 1 otherwise).
 * BENCH_REMINDERS=0 skips it. It runs first, while nothing else is running.
 *
 * Sending through SMTP (smtp.ts), on its own fresh database (BENCH_DATABASE_URL as above): BENCH_SMTP
 * reminder emails (default 10,000; 0 skips) drained through channel-email to a loopback SMTP server in
 * this process (aim ≥ 500/s), then more while that server answers slowly (the loop must stay free).
 *
 * Outgoing webhooks (webhooks.ts), on its own fresh SQLite file or MariaDB database (BENCH_DATABASE_URL
 * as above): 10,000 payment events (BENCH_WEBHOOKS; 0 skips) fanned to 3 endpoints drain to 3 real
 * receivers on loopback, with the longest event-loop block meanwhile (≤ 20 ms) and each event received
 * exactly once per endpoint (exits 1 otherwise). It runs second.
 *
 * It prints req/s, p50/p99, the ratios with the targets from the issues and a summary; it asserts no
 * timings (the numbers depend on the machine) but exits 1 when a target answered errors or non-2xx,
 * could not start, or the view counters disagree with the rows.
 *
 * The crypto watcher (crypto.ts), on its own fresh database (BENCH_DATABASE_URL as above) and a
 * ganache chain in this process: 10,000 open crypto checkouts (BENCH_CRYPTO; 0 skips) scanned pass
 * after pass as the scheduled job does; the longest event-loop block (≤ 20 ms), every confirmed block
 * read by one pass only, and the paid checkouts found. It runs third.
 *
 * Payment requests (requests.ts), on its own fresh database (BENCH_DATABASE_URL as above): API creates
 * with email + SMS in the same call, one at a time (p99 ≤ 25 ms), and 100,000 forged `/r/` tokens
 * refused with zero database queries. BENCH_REQUESTS (creates, default 300; 0 skips), BENCH_FORGED.
 * And, in a process of its own, a 10,000-row payment request CSV checked whole (≤ 3 s);
 * BENCH_IMPORT_ROWS (default 10,000; 0 skips).
 *
 * Environment: BENCH_DURATION (measured s per target, default 8), BENCH_ROUNDS (2), BENCH_WARMUP
 * (s, 2), BENCH_CONNECTIONS (50),
 * BENCH_MYSQL_URL (mysql://root@127.0.0.1:3306), BENCH_REDIS_URL (redis://127.0.0.1:6379),
 * BENCH_PROFILE=<dir> (write a .cpuprofile per Paylink server, for `node --cpu-prof`-style analysis),
 * BENCH_STRIPE (1, default: the seeded merchant takes payments through Stripe; 0: through the
 * sandbox), BENCH_VIEWS (views seeded on the busy link, default 1,000,000), BENCH_DATABASE_URL
 * (mysql:// server for the analytics part; default SQLite), BENCH_LATENCY_WARMUP (30) and BENCH_LATENCY_REQUESTS (200)
 * per dashboard page.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon, { type Result } from 'autocannon';
import mysql from 'mysql2/promise';
import { createClient } from 'redis';
import { BROWSER_AGENTS, countViews, diagnose, measureLatency, pageCases, seedAnalytics, type Diagnostics, type Latency, type Seeded } from './analytics.ts';
import { measureReminders, remindersCorrect, reportReminders, seedReminders, type RemindersResult } from './reminders.ts';
import { pinMeasuredTo } from './child.ts';
import { measureWebhooks, reportWebhooks, webhooksCorrect, type WebhooksResult } from './webhooks.ts';
import { cryptoCorrect, cryptoOptions, measureCrypto, reportCrypto, type CryptoResult } from './crypto.ts';
import { measureSmtp, reportSmtp, smtpCorrect, type SmtpResult } from './smtp.ts';
import { measureRequestImport, measureRequests, reportRequestImport, reportRequests, type RequestImportResult, type RequestsResult } from './requests.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** BENCH_STRIPE=0 measures the pay page without the Stripe provider enabled (default: enabled). */
const STRIPE = process.env.BENCH_STRIPE !== '0';
const HERE = path.join(ROOT, 'test/bench');
/** BENCH_NODE24=0 measures the HTTP targets on this Node only (default: on Node 24 too, see .ci/node24). */
const NODE24 = process.env.BENCH_NODE24 !== '0';
const DURATION = Number(process.env.BENCH_DURATION ?? 8);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
/** The measured seconds are split into interleaved rounds; each target reports its best round. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
/** Stripe / sandbox only: pairs of short back-to-back rounds (BENCH_PAIRS, BENCH_PAIR_SECONDS). */
const PAIRS = Math.max(2, Number(process.env.BENCH_PAIRS ?? 12));
const PAIR_SECONDS = Number(process.env.BENCH_PAIR_SECONDS ?? 1.5);
/** > 0: also pair a Stripe page made this many µs per request dearer (spin.ts) with the sandbox-only page, as a negative control. */
const STRIPE_CONTROL_US = Number(process.env.BENCH_STRIPE_CONTROL_US ?? 0);
/** > 0: the p99 pairs' negative control, an Express hello-world stalled this many ms every BENCH_P99_CONTROL_EVERY_MS (100) ms. */
const P99_CONTROL_MS = Number(process.env.BENCH_P99_CONTROL_MS ?? 0);
const P99_CONTROL_EVERY_MS = Number(process.env.BENCH_P99_CONTROL_EVERY_MS ?? 100);
/** The merchants seeded beside the Stripe merchant on its server: the sandbox-only one, and the control's. */
const SANDBOX_HANDLE = 'bench-sandbox';
const CONTROL_HANDLE = 'bench-control';
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** When set, Paylink servers write a V8 CPU profile there (open in Chrome DevTools or speedscope). */
const PROFILE_DIR = process.env.BENCH_PROFILE ? path.resolve(process.env.BENCH_PROFILE) : null;
/** stripe: the pay page with the Stripe provider enabled against the sandbox only, in the same run (noise allowance 5 %). */
/**
 * bare: pay page / bare node:http on the same Node, by Node major (issue 15 raised them from 0.10);
 * p99VsExpress: the pay page's p99 at CONNECTIONS connections against the Express hello-world's p99
 * on the same Node in the same run.
 */
const TARGETS = { bare: { 20: 0.15, 22: 0.15, 24: 0.3 } as Record<number, number>, express: 0.6, p99VsExpress: 1.2, pageP95Ms: 50, pageVsEmpty: 2, recording: 0.9, stripe: 0.95 };
/** The pay page / bare node:http target on `node` (a newer Node than those listed takes the newest's). */
function bareTarget(node: NodeRun): number {
  const major = Number(node.version.slice(1).split('.')[0]);
  const known = Object.keys(TARGETS.bare).map(Number).filter((m) => m <= major);
  return TARGETS.bare[known.length ? Math.max(...known) : 20];
}
const VIEWS = Number(process.env.BENCH_VIEWS ?? 1_000_000);
const ANALYTICS_DB_URL = process.env.BENCH_DATABASE_URL?.trim() || null;
const LATENCY_WARMUP = Number(process.env.BENCH_LATENCY_WARMUP ?? 30);
const LATENCY_REQUESTS = Number(process.env.BENCH_LATENCY_REQUESTS ?? 200);
const SESSION_SECRET = 'bench-session-secret-0123456789-abcdefghijklmnop';
const REMINDERS = Number(process.env.BENCH_REMINDERS ?? 100_000);
const REMINDERS_FUTURE = Number(process.env.BENCH_REMINDERS_FUTURE ?? Math.floor(REMINDERS / 2));
const WEBHOOK_EVENTS = Number(process.env.BENCH_WEBHOOKS ?? 10_000);
const REQUEST_CREATES = Number(process.env.BENCH_REQUESTS ?? 300);
const FORGED_TOKENS = Number(process.env.BENCH_FORGED ?? 100_000);
const IMPORT_ROWS = Number(process.env.BENCH_IMPORT_ROWS ?? 10_000);

const tag = Math.random().toString(36).slice(2, 8);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-bench-'));
const children = new Set<ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];

// ---------------------------------------------------------------- CPUs
const cpus = os.availableParallelism();
const canPin = cpus >= 2 && spawnSync('taskset', ['--version']).status === 0;
const serverCpu = String(cpus - 1);
const loadCpus = `0-${cpus - 2}`;
if (canPin) spawnSync('taskset', ['-a', '-p', '-c', loadCpus, String(process.pid)], { stdio: 'ignore' });
// The reminders, webhooks and requests measurements run in processes of their own, unpinned, as a
// server runs: held to one CPU, V8's garbage-collection helpers and libuv's threads would queue
// behind the JavaScript thread itself (measured: requests p99 86 ms pinned, 31 ms not). Every CPU is
// named, as a child would otherwise inherit this process's pinning.
pinMeasuredTo(canPin ? `0-${cpus - 1}` : null);

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

// ---------------------------------------------------------------- Node versions
/** A Node to run servers on: its binary and the checkout whose node_modules were installed for it. */
interface NodeRun {
  /** "Node 20", "Node 24". */
  label: string;
  version: string;
  execPath: string;
  root: string;
}

const THIS_NODE: NodeRun = { label: `Node ${process.versions.node.split('.')[0]}`, version: process.version, execPath: process.execPath, root: ROOT };

/**
 * Node 24 beside this one: .ci/node24 installs it from the npm registry into a cache folder (once) and
 * keeps a copy of this checkout there with node_modules built for it (native addons are per Node ABI).
 * Null (with the reason logged) when it cannot, or when this process already is Node 24.
 */
function otherNode(): NodeRun | null {
  if (!NODE24 || THIS_NODE.label === 'Node 24') return null;
  log('Node 24: preparing (.ci/node24: Node from the npm registry, a copy of this checkout with its own node_modules)');
  const r = spawnSync(path.join(ROOT, '.ci/node24'), { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const [execPath, root] = (r.stdout ?? '').trim().split('\n');
  if (r.status !== 0 || !execPath || !root) {
    log(`  Node 24 unavailable (.ci/node24 exited with ${r.status}): measuring ${THIS_NODE.label} only`);
    return null;
  }
  const version = spawnSync(execPath, ['-v'], { encoding: 'utf8' }).stdout.trim();
  return { label: `Node ${version.slice(1).split('.')[0]}`, version, execPath, root };
}

// ---------------------------------------------------------------- processes
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

interface Child {
  proc: ChildProcess;
  output: () => string;
}

/** Runs a TypeScript entry point (`script`, relative to the checkout) under tsx on `node`, pinned to the server CPU. */
function start(node: NodeRun, script: string, env: Record<string, string>, nodeArgs: string[] = [], preloads: string[] = []): Child {
  const cmd = [node.execPath, ...nodeArgs, '--import', 'tsx', ...preloads.flatMap((p) => ['--import', pathToFileURL(path.join(node.root, p)).href]), path.join(node.root, script)];
  const [file, ...args] = canPin ? ['taskset', '-c', serverCpu, ...cmd] : cmd;
  const proc = spawn(file, args, { cwd: node.root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-8_000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  return { proc, output: () => out };
}

async function stop(child: Child): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.proc.once('exit', () => resolve()));
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), 12_000);
  await exited;
  clearTimeout(timer);
}

/** Runs a script to completion and returns its stdout (throws with its output on failure). */
async function runScript(script: string, env: Record<string, string>): Promise<string> {
  const proc = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  if (code !== 0) throw new Error(`${path.basename(script)} exited with ${code}:\n${stderr}${stdout}`);
  return stdout;
}

/** Waits until `url` answers something other than 503 "starting". */
async function waitUntilUp(url: string, child: Child, timeoutMs = 30_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`server exited with ${child.proc.exitCode}:\n${child.output()}`);
    try {
      const res = await fetch(url, { redirect: 'manual' });
      if (res.status !== 503) return res;
      await res.arrayBuffer();
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not come up within ${timeoutMs / 1000} s:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------- a byte-counting proxy (Redis)
/** Forwards to host:port and counts the bytes clients send; pay pages should send none. */
async function countingProxy(target: URL): Promise<{ url: string; sent: () => number; close: () => Promise<void> }> {
  let sent = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (d) => (sent += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const u = new URL(target);
  u.hostname = '127.0.0.1';
  u.port = String((server.address() as net.AddressInfo).port);
  return {
    url: u.toString(),
    sent: () => sent,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------- load
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** utime + stime of a process (Linux /proc), in seconds; null elsewhere. */
function cpuSeconds(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // fields 14 and 15 of stat(5)
  } catch {
    return null;
  }
}

/** A running server to measure. */
interface Target {
  name: string;
  /** The Node it runs on. */
  node: NodeRun;
  url: string;
  pid: number;
  bytes: number;
  notes: string[];
  /** Bytes the server has sent to Redis so far (MariaDB target only). */
  redisSent?: () => number;
  /** Request headers the connections cycle through (browser user agents, so pay-page views count). */
  headers?: Record<string, string>[];
  /** 2xx responses so far, warm-up included. */
  answered: number;
  stop: () => Promise<void>;
}

/** One measured round of one target. */
interface Round {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** Server CPU time (all threads) per request; steadier than req/s on a busy machine. */
  cpuUs: number | null;
  redisBytes: number | null;
}

interface Measured extends Round {
  name: string;
  node: NodeRun;
  url: string;
  bytes: number;
  notes: string[];
  rounds: Round[];
}

async function cannon(t: Target, seconds: number, onResponse?: (ms: number) => void): Promise<Result> {
  const path = new URL(t.url).pathname;
  const requests = t.headers?.map((headers) => ({ method: 'GET', path, headers }));
  const result = await new Promise<Result>((resolve, reject) => {
    const instance = autocannon({ url: t.url, connections: CONNECTIONS, duration: seconds, pipelining: 1, timeout: 10, requests }, (err, r) => (err ? reject(err) : resolve(r)));
    if (onResponse) instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => onResponse(ms));
  });
  t.answered += result['2xx'];
  return result;
}

/** One measured round; latency percentiles from every response at µs resolution. */
async function round(t: Target, seconds: number): Promise<Round> {
  const hist = createHistogram();
  const cpuBefore = cpuSeconds(t.pid);
  const redisBefore = t.redisSent?.() ?? null;
  const result = await cannon(t, seconds, (ms) => hist.record(Math.max(1, Math.round(ms * 1000))));
  const cpuAfter = cpuSeconds(t.pid);
  const n = result.requests.total;
  return {
    rps: n / result.duration,
    p50: hist.count ? hist.percentile(50) / 1000 : NaN,
    p99: hist.count ? hist.percentile(99) / 1000 : NaN,
    requests: n,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    cpuUs: cpuBefore !== null && cpuAfter !== null && n > 0 ? ((cpuAfter - cpuBefore) * 1e6) / n : null,
    redisBytes: redisBefore === null ? null : t.redisSent!() - redisBefore,
  };
}

// ---------------------------------------------------------------- targets
async function target(node: NodeRun, name: string, child: Child, url: string, notes: string[] = []): Promise<Target> {
  const res = await fetch(url);
  const bytes = (await res.arrayBuffer()).byteLength;
  return { name, node, url, pid: child.proc.pid!, bytes, notes, answered: 0, stop: () => stop(child) };
}

/** A target's name with its Node: "pay page, SQLite · Node 24". */
const named = (node: NodeRun, name: string) => `${name} · ${node.label}`;

async function baseline(node: NodeRun, name: string, script: string, env: Record<string, string> = {}, preloads: string[] = []): Promise<Target> {
  const port = await freePort();
  const child = start(node, `test/bench/${script}`, { ...env, PORT: String(port), NODE_ENV: 'production' }, [], preloads);
  const url = `http://127.0.0.1:${port}/`;
  await waitUntilUp(url, child);
  return target(node, named(node, name), child, url);
}

interface PaylinkEnv {
  DATABASE_URL: string;
  REDIS_URL?: string;
}

/** The production environment of a Paylink process on `dbEnv`'s database (port and URL added per server). */
function paylinkEnv(dbEnv: PaylinkEnv, redisPrefix: string, stripe = STRIPE): Record<string, string> {
  return {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PAYLINK_DATA_DIR: fs.mkdtempSync(path.join(tmp, 'data-')),
    REDIS_PREFIX: redisPrefix,
    SESSION_SECRET,
    // The seeded merchant takes payments through Stripe (install-wide key; the pay page never calls
    // Stripe, so it needs no server): its origins join the pay page's CSP.
    ...(stripe ? { PAYLINK_PLUGIN_PROVIDER_STRIPE: JSON.stringify({ secretKey: 'sk_test_bench000000000000', webhookSecret: 'whsec_bench000000000000', apiBase: 'http://127.0.0.1:9' }) } : {}),
    ...dbEnv,
  };
}

async function listening(env: Record<string, string>): Promise<{ env: Record<string, string>; origin: string }> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  return { env: { ...env, PORT: String(port), BASE_URL: origin }, origin };
}

/** One directory per server: every thread (tsx runs a loader thread) writes its own profile. */
const profileArgs = (name: string) => (PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.join(PROFILE_DIR, `${name.replace(/\W+/g, '-')}-${tag}`)}`] : []);

/** Stopping also prints what the server logged (LOG_LEVEL=warn: only problems). */
function stopsLoudly(t: Target, child: Child): Target {
  return {
    ...t,
    stop: async () => {
      await stop(child);
      const said = child.output().trim();
      if (said) log(`  ${t.name} server output (LOG_LEVEL=warn):\n    ${said.slice(-1_500).split('\n').join('\n    ')}`);
    },
  };
}

/** More merchants in a Paylink target's database, each with the same link: served by the same process. */
interface AlsoSeeded {
  handle: string;
  /** true: on the sandbox only (the merchant of the target takes Stripe when BENCH_STRIPE). */
  sandboxOnly: boolean;
  /** > 0: this merchant's pages cost that many µs more per request (spin.ts): the negative control. */
  spinUs?: number;
}

async function paylink(node: NodeRun, name: string, dbEnv: PaylinkEnv, stripe = STRIPE, also: AlsoSeeded[] = []): Promise<Target & { also: Map<string, string> }> {
  name = named(node, name);
  const { env, origin } = await listening(paylinkEnv(dbEnv, `paylink_bench_${tag}_${node.label.replace(/\W+/g, '')}`, stripe));
  const seeded = JSON.parse(await runScript(path.join(HERE, 'seed.ts'), env)) as { handle: string; path: string };
  const alsoUrls = new Map<string, string>();
  for (const a of also) {
    const more = JSON.parse(await runScript(path.join(HERE, 'seed.ts'), { ...env, BENCH_HANDLE: a.handle, ...(a.sandboxOnly ? { BENCH_SANDBOX_ONLY: '1' } : {}) })) as { handle: string; path: string };
    alsoUrls.set(a.handle, `${origin}/${more.handle}/${more.path}`);
  }
  const spin = also.find((a) => (a.spinUs ?? 0) > 0);
  const child = spin ? start(node, 'src/server.ts', { ...env, BENCH_SPIN_US: String(spin.spinUs), BENCH_SPIN_PATH: `/${spin.handle}/` }, profileArgs(name), ['test/bench/spin.ts']) : start(node, 'src/server.ts', env, profileArgs(name));
  const payUrl = `${origin}/${seeded.handle}/${seeded.path}`;
  let url = payUrl;
  const notes: string[] = [];
  const first = await waitUntilUp(payUrl, child);
  await first.arrayBuffer();
  if (first.status !== 200) {
    // The pay-page route may not exist yet: bench the merchant page rather than a 404 page.
    url = `${origin}/${seeded.handle}`;
    notes.push(`MISS: ${new URL(payUrl).pathname} answered ${first.status}: benched the merchant page ${new URL(url).pathname} instead`);
    log(`  ${notes[0]}`);
  }
  const check = await fetch(url);
  await check.arrayBuffer();
  const cookie = check.headers.get('set-cookie');
  notes.push(cookie ? `MISS: the pay page sets a cookie (${cookie.split(';')[0].split('=')[0]}); it must not touch the session` : 'no Set-Cookie on the pay page (no session)');
  for (const [handle, u] of alsoUrls) {
    const res = await fetch(u);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${name}: the page of ${handle} answered ${res.status}`);
  }
  return { ...stopsLoudly(await target(node, name, child, url, notes), child), also: alsoUrls };
}

/** Another page served by `t`'s process (one of its `also` merchants): measured alone, never stopped itself. */
function samePage(t: Target & { also: Map<string, string> }, handle: string, name: string): Target {
  return { name: named(t.node, name), node: t.node, url: t.also.get(handle)!, pid: t.pid, bytes: t.bytes, notes: [], answered: 0, stop: async () => {} };
}

async function mariadbReachable(): Promise<boolean> {
  try {
    const conn = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: 2_000 });
    await conn.end();
    const redis = createClient({ url: REDIS_URL, socket: { connectTimeout: 2_000, reconnectStrategy: false } });
    redis.on('error', () => {});
    await redis.connect();
    await redis.ping();
    await redis.quit();
    return true;
  } catch {
    return false;
  }
}

/** A new database on `serverUrl`, dropped (with the Redis keys under `redisPrefix`) when the bench ends. */
async function freshMysqlDatabase(serverUrl: string, dbName: string, redisPrefix: string): Promise<string> {
  const admin = await mysql.createConnection({ uri: serverUrl });
  await admin.query(`CREATE DATABASE \`${dbName}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  cleanups.push(async () => {
    await admin.query(`DROP DATABASE IF EXISTS \`${dbName}\``);
    await admin.end();
  });
  cleanups.push(async () => {
    const redis = createClient({ url: REDIS_URL });
    redis.on('error', () => {});
    await redis.connect();
    for await (const keys of redis.scanIterator({ MATCH: `${redisPrefix}:*`, COUNT: 500 })) if (keys.length) await redis.del(keys);
    await redis.quit();
  });
  const db = new URL(serverUrl);
  db.pathname = `/${dbName}`;
  return db.toString();
}

async function mariadbTarget(node: NodeRun): Promise<Target | null> {
  if (!(await mariadbReachable())) return null;
  const db = `paylink_bench_${tag}_${node.label.replace(/\W+/g, '')}`;
  const database = await freshMysqlDatabase(MYSQL_URL, db, db);
  const proxy = await countingProxy(new URL(REDIS_URL));
  cleanups.push(proxy.close);
  const t = await paylink(node, 'pay page, MariaDB + Redis', { DATABASE_URL: database, REDIS_URL: proxy.url });
  return { ...t, redisSent: proxy.sent };
}

// ---------------------------------------------------------------- analytics
interface AnalyticsDb {
  label: string;
  env: Record<string, string>;
}

/** A fresh SQLite file, or a fresh database on BENCH_DATABASE_URL's MariaDB server (with Redis, as scaled mode runs). */
async function analyticsDatabase(): Promise<AnalyticsDb> {
  const redisPrefix = `paylink_bench_${tag}_analytics`;
  if (!ANALYTICS_DB_URL) return { label: 'SQLite', env: paylinkEnv({ DATABASE_URL: path.join(tmp, 'analytics.db') }, redisPrefix) };
  if (!/^mysql2?:\/\//.test(ANALYTICS_DB_URL)) throw new Error(`BENCH_DATABASE_URL must be a mysql:// server URL (unset: SQLite), got ${ANALYTICS_DB_URL}`);
  const database = await freshMysqlDatabase(ANALYTICS_DB_URL, `paylink_bench_${tag}_analytics`, redisPrefix);
  return { label: 'MariaDB + Redis', env: paylinkEnv({ DATABASE_URL: database, REDIS_URL }, redisPrefix) };
}

/** A fresh database for the reminders bench: SQLite, or a new database on BENCH_DATABASE_URL's server. */
async function remindersDatabase(): Promise<AnalyticsDb> {
  const redisPrefix = `paylink_bench_${tag}_reminders`;
  if (!ANALYTICS_DB_URL) return { label: 'SQLite', env: paylinkEnv({ DATABASE_URL: path.join(tmp, 'reminders.db') }, redisPrefix) };
  const database = await freshMysqlDatabase(ANALYTICS_DB_URL, `paylink_bench_${tag}_reminders`, redisPrefix);
  return { label: 'MariaDB + Redis', env: paylinkEnv({ DATABASE_URL: database, REDIS_URL }, redisPrefix) };
}

/** Seeds the reminder plans, then measures the sweep and the handoff in a fresh process. */
async function remindersBench(): Promise<RemindersResult | null> {
  if (REMINDERS <= 0) return null;
  const rdb = await remindersDatabase();
  log(`seeding ${fmt(REMINDERS)} due and ${fmt(REMINDERS_FUTURE)} future reminder plans on ${rdb.label}`);
  const seeded = await seedReminders({ ...rdb.env, BASE_URL: 'http://127.0.0.1:3000' }, REMINDERS, REMINDERS_FUTURE, log);
  log(`  seeded in ${seeded.seconds.toFixed(1)} s; sweep and handoff in a fresh process`);
  const result = await measureReminders({ ...rdb.env, BASE_URL: 'http://127.0.0.1:3000' }, seeded, rdb.label, log);
  log(`  reminders: sweep + handoff ${result.totalSeconds.toFixed(2)} s, longest block ${result.blockMs.toFixed(1)} ms`);
  return result;
}

/**
 * After a part on SQLite: its database file goes (the reminders part leaves ~½ GB, mostly outbox
 * payloads) and the disk is synced, so the next part does not measure the kernel writing back the
 * last one's pages (a payment request's commit waited behind that: its p99 doubled).
 */
function settle(part: string): void {
  const t = performance.now();
  for (const suffix of ['', '-wal', '-shm', '-journal']) fs.rmSync(path.join(tmp, `${part}.db${suffix}`), { force: true });
  spawnSync('sync');
  const ms = performance.now() - t;
  if (ms > 100) log(`  ${part}: its files removed and the disk synced in ${(ms / 1000).toFixed(1)} s`);
}

/** Sending at scale through real SMTP (smtp.ts): BENCH_SMTP reminder emails (default 10,000; 0 skips), on its own fresh database. */
async function smtpBench(): Promise<SmtpResult | null> {
  const messages = Number(process.env.BENCH_SMTP ?? 10_000);
  if (messages <= 0) return null;
  const redisPrefix = `paylink_bench_${tag}_smtp`;
  const sdb = ANALYTICS_DB_URL
    ? { label: 'MariaDB + Redis', env: paylinkEnv({ DATABASE_URL: await freshMysqlDatabase(ANALYTICS_DB_URL, `paylink_bench_${tag}_smtp`, redisPrefix), REDIS_URL }, redisPrefix) }
    : { label: 'SQLite', env: paylinkEnv({ DATABASE_URL: path.join(tmp, 'smtp.db') }, redisPrefix) };
  log(`smtp: ${fmt(messages)} reminder emails through a loopback SMTP server on ${sdb.label}`);
  const result = await measureSmtp({ ...sdb.env, BASE_URL: 'http://127.0.0.1:3000' }, messages, sdb.label, log);
  log(`  smtp: ${fmt(result.perSecond)} messages/s, longest block ${result.blockMs.toFixed(1)} ms`);
  return result;
}

/** Payment requests: API create with dispatch at c = 1, and forged tokens refused with no query. */
async function requestsBench(): Promise<RequestsResult | null> {
  if (REQUEST_CREATES <= 0) return null;
  const redisPrefix = `paylink_bench_${tag}_requests`;
  const qdb: AnalyticsDb = ANALYTICS_DB_URL
    ? { label: 'MariaDB + Redis', env: paylinkEnv({ DATABASE_URL: await freshMysqlDatabase(ANALYTICS_DB_URL, `paylink_bench_${tag}_requests`, redisPrefix), REDIS_URL }, redisPrefix) }
    : { label: 'SQLite', env: paylinkEnv({ DATABASE_URL: path.join(tmp, 'requests.db') }, redisPrefix) };
  log(`payment requests: ${fmt(REQUEST_CREATES)} API creates and ${fmt(FORGED_TOKENS)} forged tokens on ${qdb.label}`);
  const { PAYLINK_PLUGIN_PROVIDER_STRIPE: _stripe, ...env } = qdb.env;
  const result = await measureRequests({ ...env, BASE_URL: 'http://127.0.0.1:3000' }, REQUEST_CREATES, FORGED_TOKENS, qdb.label, log);
  log(`  requests: create p99 ${result.p99Ms.toFixed(2)} ms, ${result.forgedQueries} queries for forged tokens`);
  return result;
}

/** Payment requests from CSV: a 10,000-row file checked whole (nothing written), in a fresh process on a fresh database. */
async function requestImportBench(): Promise<RequestImportResult | null> {
  if (IMPORT_ROWS <= 0) return null;
  const redisPrefix = `paylink_bench_${tag}_request_import`;
  const qdb: AnalyticsDb = ANALYTICS_DB_URL
    ? { label: 'MariaDB + Redis', env: paylinkEnv({ DATABASE_URL: await freshMysqlDatabase(ANALYTICS_DB_URL, `paylink_bench_${tag}_request_import`, redisPrefix), REDIS_URL }, redisPrefix) }
    : { label: 'SQLite', env: paylinkEnv({ DATABASE_URL: path.join(tmp, 'request-import.db') }, redisPrefix) };
  log(`payment request import: a ${fmt(IMPORT_ROWS)}-row CSV checked on ${qdb.label}`);
  const { PAYLINK_PLUGIN_PROVIDER_STRIPE: _stripe, ...env } = qdb.env;
  const result = await measureRequestImport({ ...env, BASE_URL: 'http://127.0.0.1:3000' }, IMPORT_ROWS, qdb.label, log);
  log(`  request import: checked in ${result.seconds.toFixed(2)} s`);
  return result;
}

/** 10,000 payment events fanned to 3 endpoints, drained in a fresh process on a fresh database. */
async function webhooksBench(): Promise<WebhooksResult | null> {
  if (WEBHOOK_EVENTS <= 0) return null;
  const redisPrefix = `paylink_bench_${tag}_webhooks`;
  const wdb: AnalyticsDb = ANALYTICS_DB_URL
    ? { label: 'MariaDB + Redis', env: paylinkEnv({ DATABASE_URL: await freshMysqlDatabase(ANALYTICS_DB_URL, `paylink_bench_${tag}_webhooks`, redisPrefix), REDIS_URL }, redisPrefix) }
    : { label: 'SQLite', env: paylinkEnv({ DATABASE_URL: path.join(tmp, 'webhooks.db') }, redisPrefix) };
  log(`webhooks: ${fmt(WEBHOOK_EVENTS)} payment events to 3 endpoints on ${wdb.label}`);
  // The measuring runtime loads no plugins: the pay page's Stripe settings are not for it.
  const { PAYLINK_PLUGIN_PROVIDER_STRIPE: _stripe, ...env } = wdb.env;
  const result = await measureWebhooks({ ...env, BASE_URL: 'http://127.0.0.1:3000' }, WEBHOOK_EVENTS, wdb.label, log);
  log(`  webhooks: drained in ${result.drainSeconds.toFixed(2)} s, longest block ${result.blockMs.toFixed(1)} ms`);
  return result;
}

/** The crypto watcher over BENCH_CRYPTO open checkouts (default 10,000; 0 skips), on its own fresh database and a ganache chain. */
async function cryptoBench(): Promise<CryptoResult | null> {
  const opts = cryptoOptions('');
  if (opts.sessions <= 0) return null;
  const redisPrefix = `paylink_bench_${tag}_crypto`;
  const cdb: AnalyticsDb = ANALYTICS_DB_URL
    ? { label: 'MariaDB + Redis', env: paylinkEnv({ DATABASE_URL: await freshMysqlDatabase(ANALYTICS_DB_URL, `paylink_bench_${tag}_crypto`, redisPrefix), REDIS_URL }, redisPrefix) }
    : { label: 'SQLite', env: paylinkEnv({ DATABASE_URL: path.join(tmp, 'crypto.db') }, redisPrefix) };
  log(`crypto: the watcher over ${fmt(opts.sessions)} open checkouts on ${cdb.label}`);
  const { PAYLINK_PLUGIN_PROVIDER_STRIPE: _stripe, ...env } = cdb.env;
  const result = await measureCrypto({ ...env, BASE_URL: 'http://127.0.0.1:3000' }, { ...opts, label: cdb.label }, log);
  log(`  crypto: ${result.passes} passes, longest block ${result.blockMs.toFixed(1)} ms`);
  return result;
}

/** The seeded database's pay page, served with view recording on or off; load comes with browser user agents. */
async function analyticsTarget(node: NodeRun, name: string, adb: AnalyticsDb, seeded: Seeded, record: boolean): Promise<Target & { origin: string }> {
  name = named(node, name);
  const { env, origin } = await listening({ ...adb.env, BENCH_RECORD_VIEWS: record ? '1' : '0' });
  const child = start(node, 'test/bench/paylink-server.ts', env, profileArgs(name));
  const url = `${origin}/${seeded.handle}/${seeded.pay.path}`;
  const first = await waitUntilUp(url, child);
  await first.arrayBuffer();
  if (first.status !== 200) throw new Error(`${name}: ${new URL(url).pathname} answered ${first.status}`);
  const t = stopsLoudly(await target(node, name, child, url), child);
  return { ...t, origin, headers: BROWSER_AGENTS.map((ua) => ({ 'user-agent': ua })) };
}

/** Warm every target, then ROUNDS interleaved rounds; each target keeps its best round (most req/s). */
async function measureAll(targets: Target[]): Promise<Measured[]> {
  for (const t of targets) {
    log(`  warm-up ${t.name}`);
    await cannon(t, WARMUP);
  }
  const rounds = new Map<Target, Round[]>(targets.map((t) => [t, []]));
  const seconds = Math.max(1, DURATION / ROUNDS);
  for (let r = 1; r <= ROUNDS; r++) {
    for (const t of targets) {
      const m = await round(t, seconds);
      rounds.get(t)!.push(m);
      log(`  round ${r}/${ROUNDS} ${t.name}: ${Math.round(m.rps)} req/s, p50 ${m.p50.toFixed(2)} ms, p99 ${m.p99.toFixed(2)} ms, non-2xx ${m.non2xx}, errors ${m.errors}${m.cpuUs === null ? '' : `, server CPU ${Math.round(m.cpuUs)} µs/req`}`);
    }
  }
  return targets.map((t) => {
    const all = rounds.get(t)!;
    const best = all.reduce((a, b) => (b.rps > a.rps ? b : a));
    const notes = [...t.notes];
    if (t.redisSent) {
      // Background work (job nudges, sweeps) may send a little; a pay page that used Redis would
      // send at least one command (≥ 14 bytes) per request.
      const sent = all.reduce((n, r) => n + (r.redisBytes ?? 0), 0);
      const requests = all.reduce((n, r) => n + r.requests, 0);
      const perRequest = sent >= requests;
      notes.push(`${perRequest ? 'MISS: ' : ''}Redis traffic from the server while measured: ${fmt(sent)} bytes for ${fmt(requests)} requests${perRequest ? ' (pay pages must not touch Redis)' : ''}`);
    }
    return {
      ...best,
      // Any error in any round counts.
      non2xx: all.reduce((n, r) => n + r.non2xx, 0),
      errors: all.reduce((n, r) => n + r.errors, 0),
      name: t.name,
      node: t.node,
      url: t.url,
      bytes: t.bytes,
      notes,
      rounds: all,
    };
  });
}

// ---------------------------------------------------------------- report
const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);
const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');

/** One line of the final summary. */
interface Check {
  name: string;
  value: string;
  target: string;
  ok: boolean;
}
const checks: Check[] = [];
const check = (name: string, value: string, target: string, ok: boolean) => {
  checks.push({ name, value, target, ok });
  return `${pad(name, 44)}${lpad(value, 9)}   ${pad(target, 30)}${verdict(ok)}`;
};

/** The HTTP targets of one Node: its two baselines, its pay pages, the seeded database's pay page with and without recording. */
interface NodeSet {
  node: NodeRun;
  bare: Measured;
  express: Measured;
  pays: (Measured | { name: string; skipped: string })[];
  recording: Measured;
  without: Measured;
  /** Each page's p99 against the Express hello-world's, in pairs of short back-to-back rounds (by page name). */
  p99: Map<string, Paired>;
}

/** A page's p99 / the Express hello-world's p99 on the same Node: the median of its pairs. */
const p99Ratio = (set: NodeSet, m: Measured) => {
  const pairs = set.p99.get(m.name);
  return pairs ? median(pairs.p99Ratios) : m.p99 / set.express.p99;
};

function header(nodes: NodeRun[]): string[] {
  return [
    '',
    `Paylink bench — ${nodes.map((n) => `${n.label} (${n.version})`).join(' and ')}, ${os.cpus()[0]?.model ?? 'cpu'} × ${cpus}, ${CONNECTIONS} connections, ${WARMUP} s warm-up, best of ${ROUNDS} × ${DURATION / ROUNDS} s rounds`,
    canPin ? `servers pinned to CPU ${serverCpu}, load generator (autocannon) to CPU ${loadCpus}` : 'CPU pinning unavailable: servers and load generator share CPUs',
    `load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on the machine skews the numbers)`,
  ];
}

function report(set: NodeSet): string[] {
  const { node, bare, express, pays, recording, without } = set;
  const out: string[] = [];
  const more = [recording, without];
  const bareGoal = bareTarget(node);
  out.push('');
  out.push(`${node.label} (${node.version}):`);
  out.push(`${pad('target', 44)}${lpad('req/s', 10)}${lpad('p50 ms', 9)}${lpad('p99 ms', 9)}${lpad('non-2xx', 9)}${lpad('errors', 8)}${lpad('bytes', 8)}${lpad('CPU µs/req', 12)}  all rounds req/s  path`);
  for (const m of [bare, express, ...pays, ...more]) {
    if ('skipped' in m) {
      out.push(`${pad(m.name, 44)}${m.skipped}`);
      continue;
    }
    out.push(`${pad(m.name, 44)}${lpad(fmt(m.rps), 10)}${lpad(m.p50.toFixed(2), 9)}${lpad(m.p99.toFixed(2), 9)}${lpad(fmt(m.non2xx), 9)}${lpad(fmt(m.errors), 8)}${lpad(fmt(m.bytes), 8)}${lpad(m.cpuUs === null ? '–' : fmt(m.cpuUs), 12)}  ${pad(m.rounds.map((r) => fmt(r.rps)).join(' / '), 16)}  ${new URL(m.url).pathname}`);
  }
  out.push('');
  for (const m of [...pays, recording]) {
    if ('skipped' in m) continue;
    const rBare = m.rps / bare.rps;
    const rExpress = m.rps / express.rps;
    out.push(`${m.name}:`);
    out.push(`  ${check(`${m.name}: pay / bare node:http`, rBare.toFixed(3), `≥ ${bareGoal.toFixed(2)}`, rBare >= bareGoal)}`);
    out.push(`  ${check(`${m.name}: pay / Express hello`, rExpress.toFixed(3), `≥ ${TARGETS.express.toFixed(2)}`, rExpress >= TARGETS.express)}`);
    const pairs = set.p99.get(m.name);
    const p99 = p99Ratio(set, m);
    const how = pairs ? `median of ${pairs.p99Ratios.length} pairs` : 'best rounds';
    out.push(`  ${check(`${m.name}: p99 / Express p99`, p99.toFixed(2), `≤ ${TARGETS.p99VsExpress.toFixed(2)} (${how})`, p99 <= TARGETS.p99VsExpress && (pairs?.bad ?? 0) === 0)}`);
    if (pairs) out.push(`    pairs: ${pairs.p99Ratios.map((r) => r.toFixed(2)).join(' / ')} (middle half ${quartiles(pairs.p99Ratios)}); best rounds above: ${m.p99.toFixed(2)} ms against ${express.p99.toFixed(2)} ms (${(m.p99 / express.p99).toFixed(2)}; not the target)`);
    if (m.cpuUs !== null && bare.cpuUs !== null && express.cpuUs !== null) {
      // The same ratios from server CPU per request: less sensitive to other load on the machine.
      out.push(`  by server CPU/request: bare/pay ${(bare.cpuUs / m.cpuUs).toFixed(3)}, Express/pay ${(express.cpuUs / m.cpuUs).toFixed(3)} (cross-check, not the target)`);
    }
    for (const n of m.notes ?? []) out.push(`  ${n}`);
  }
  return out;
}

/** The same ratios on each Node, one column per Node (the targets differ by Node: see TARGETS). */
function sideBySide(sets: NodeSet[]): string[] {
  const base = (name: string) => name.replace(/ · Node \d+$/, '');
  const col = 18;
  const out = ['', 'Side by side (each ratio against the baselines of the same Node, same run):'];
  out.push(`  ${pad('', 52)}${sets.map((s) => lpad(s.node.label, col)).join('')}`);
  const row = (label: string, values: (string | null)[]) => out.push(`  ${pad(label, 52)}${values.map((v) => lpad(v ?? '–', col)).join('')}`);
  row('bare node:http hello, req/s', sets.map((s) => fmt(s.bare.rps)));
  row('Express 5 hello / bare node:http', sets.map((s) => (s.express.rps / s.bare.rps).toFixed(3)));
  row('Express 5 hello, p99 ms', sets.map((s) => s.express.p99.toFixed(2)));
  const names = [...new Set(sets.flatMap((s) => [...s.pays, s.recording, s.without].map((m) => base(m.name))))];
  for (const name of names) {
    const of = (s: NodeSet) => [...s.pays, s.recording, s.without].find((m) => base(m.name) === name);
    const measured = (s: NodeSet) => {
      const m = of(s);
      return m && !('skipped' in m) ? m : null;
    };
    row(`${name}: / bare`, sets.map((s) => measured(s) && (measured(s)!.rps / s.bare.rps).toFixed(3)));
    row(`${name}: / Express`, sets.map((s) => measured(s) && (measured(s)!.rps / s.express.rps).toFixed(3)));
    row(`${name}: p99 / Express p99`, sets.map((s) => measured(s) && p99Ratio(s, measured(s)!).toFixed(2)));
  }
  row('targets: pay / bare', sets.map((s) => `≥ ${bareTarget(s.node).toFixed(2)}`));
  row('targets: p99 / Express p99 (median of pairs)', sets.map(() => `≤ ${TARGETS.p99VsExpress.toFixed(2)}`));
  return out;
}

/** The middle value (the mean of the two middle ones for an even count). */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A against B, pair by pair: each pair's req/s ratio (A / B), CPU-per-request ratio (B / A, so higher is better for A too) and p99 ratio (A / B). */
interface Paired {
  ratios: number[];
  cpuRatios: number[];
  p99Ratios: number[];
  /** Non-2xx answers and errors in any pair round. */
  bad: number;
}

/**
 * A against B in PAIRS back-to-back pairs of short rounds, alternating which goes first (A B, B A, …),
 * so drift on the machine and "what ran just before" fall on both equally; each pair yields one
 * ratio and the check reads the median of them. Two best-of-rounds figures measured seconds apart
 * swung 0.68–1.03 for the same two pages on this 2-core host; paired rounds cancel what the pair
 * shares.
 */
async function paired(a: Target, b: Target): Promise<Paired> {
  const out: Paired = { ratios: [], cpuRatios: [], p99Ratios: [], bad: 0 };
  for (let i = 0; i < PAIRS; i++) {
    const got = new Map<Target, Round>();
    for (const t of i % 2 ? [b, a] : [a, b]) got.set(t, await round(t, PAIR_SECONDS));
    const ra = got.get(a)!;
    const rb = got.get(b)!;
    out.bad += ra.non2xx + ra.errors + rb.non2xx + rb.errors;
    out.ratios.push(ra.rps / rb.rps);
    out.p99Ratios.push(ra.p99 / rb.p99);
    if (ra.cpuUs && rb.cpuUs) out.cpuRatios.push(rb.cpuUs / ra.cpuUs);
    log(`  pair ${i + 1}/${PAIRS} ${a.name} / ${b.name}: ${Math.round(ra.rps)} / ${Math.round(rb.rps)} req/s = ${(ra.rps / rb.rps).toFixed(3)}; p99 ${ra.p99.toFixed(2)} / ${rb.p99.toFixed(2)} ms = ${(ra.p99 / rb.p99).toFixed(2)}`);
  }
  return out;
}

const quartiles = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return `${s[Math.floor((s.length - 1) / 4)].toFixed(3)}–${s[Math.ceil(((s.length - 1) * 3) / 4)].toFixed(3)}`;
};

/** The Stripe comparison: on the same server (the check), across servers (a cross-check) and the negative control. */
interface StripeCost {
  pairs: Paired;
  across: Paired;
  control: { spinUs: number; pairs: Paired } | null;
}

/** The pay page of a merchant on Stripe against the same page of a merchant on the sandbox only (issue: "ratios do not drop"). */
function reportStripeCost(stripe: Measured, sandbox: Measured, cost: StripeCost): string[] {
  const { pairs, across, control } = cost;
  const ratio = median(pairs.ratios);
  const out = ['', `Pay page of a merchant on Stripe against the same page of a merchant on the sandbox only (SQLite), ${pairs.ratios.length} pairs of ${PAIR_SECONDS} s rounds, alternating which goes first:`];
  out.push(`  ${check('pay page: with Stripe / sandbox only', ratio.toFixed(3), `≥ ${TARGETS.stripe.toFixed(2)} (no drop; median of pairs)`, ratio >= TARGETS.stripe && pairs.bad === 0)}`);
  out.push(`  same server, pairs: ${pairs.ratios.map((r) => r.toFixed(3)).join(' / ')} (middle half ${quartiles(pairs.ratios)})`);
  if (pairs.cpuRatios.length) out.push(`  by server CPU/request, median of pairs: ${median(pairs.cpuRatios).toFixed(3)} (middle half ${quartiles(pairs.cpuRatios)}; cross-check)`);
  out.push(`  servers of their own, median of pairs: ${median(across.ratios).toFixed(3)} (middle half ${quartiles(across.ratios)}; cross-check: two processes also differ in placement and memory)`);
  out.push(`  best rounds of the interleaved rounds above, servers of their own: ${(stripe.rps / sandbox.rps).toFixed(3)} (per round ${stripe.rounds.map((r, i) => (r.rps / sandbox.rounds[i].rps).toFixed(3)).join(' / ')}; not the target)`);
  const bad = pairs.bad + across.bad + (control?.pairs.bad ?? 0);
  if (bad) out.push(`  MISS: ${fmt(bad)} non-2xx answers or errors in the pair rounds`);
  if (control) {
    const c = median(control.pairs.ratios);
    out.push(`  negative control: a Stripe merchant's page made ${control.spinUs} µs/request dearer (spin.ts), same server / sandbox only: median ${c.toFixed(3)} (middle half ${quartiles(control.pairs.ratios)}) — ${c < TARGETS.stripe ? 'below the target: a cost of that size is caught' : 'NOT below the target: the comparison cannot see a cost of that size'}`);
  }
  return out;
}

interface AnalyticsResults {
  db: AnalyticsDb;
  seeded: Seeded;
  latency: Latency[];
  diagnostics: Diagnostics;
  /** 2xx pay pages the recording servers (every Node) answered. */
  answered: number;
  counted: { rows: number; counter: number; rollups: number };
}

function reportAnalytics(a: AnalyticsResults, sets: NodeSet[]): string[] {
  const out: string[] = [''];
  out.push(`Link analytics on ${a.db.label}: ${fmt(a.seeded.views)} views over 90 days and ${fmt(a.seeded.payments)} payments on the busy link, none on the empty one; seeded in ${a.seeded.seconds.toFixed(1)} s`);
  out.push(`Dashboard pages, logged in, sequential requests (${LATENCY_WARMUP} warm-up, then ${LATENCY_REQUESTS} each, round-robin), ms:`);
  out.push(`  ${pad('page', 24)}${lpad('busy p50', 10)}${lpad('busy p95', 10)}${lpad('empty p50', 11)}${lpad('empty p95', 11)}${lpad('busy bytes', 12)}${lpad('empty bytes', 13)}`);
  const pages = [...new Set(a.latency.map((l) => l.case.page))];
  const latencyChecks: string[] = [];
  for (const page of pages) {
    const busy = a.latency.find((l) => l.case.page === page && l.case.link === 'busy')!;
    const empty = a.latency.find((l) => l.case.page === page && l.case.link === 'empty')!;
    out.push(`  ${pad(page, 24)}${lpad(busy.p50.toFixed(2), 10)}${lpad(busy.p95.toFixed(2), 10)}${lpad(empty.p50.toFixed(2), 11)}${lpad(empty.p95.toFixed(2), 11)}${lpad(fmt(busy.bytes), 12)}${lpad(fmt(empty.bytes), 13)}`);
    latencyChecks.push(check(`${page}: busy p95 ms`, busy.p95.toFixed(2), `≤ ${TARGETS.pageP95Ms} ms`, busy.p95 <= TARGETS.pageP95Ms));
    const ratio = busy.p95 / empty.p95;
    latencyChecks.push(check(`${page}: busy p95 / empty p95`, ratio.toFixed(2), `≤ ${TARGETS.pageVsEmpty} (empty p95 ${empty.p95.toFixed(2)} ms)`, ratio <= TARGETS.pageVsEmpty));
  }
  for (const l of a.latency) if (l.bad) out.push(`  FAIL: ${l.case.name} (${l.case.path}) answered ${l.bad} non-200 responses`);
  for (const line of latencyChecks) out.push(`  ${line}`);

  out.push(`Analytics services on the busy link (in this process), p50 / p95 ms of 20 calls:`);
  for (const sv of a.diagnostics.services) out.push(`  ${pad(sv.name, 30)}${lpad(sv.p50.toFixed(2), 8)} /${lpad(sv.p95.toFixed(2), 8)}`);
  out.push(`Queries behind each page (one request, in this process; the two slowest):`);
  const short = (sql: string) => (sql.length > 140 ? `${sql.slice(0, 137)}…` : sql);
  for (const q of a.diagnostics.queries) {
    out.push(`  ${pad(q.name, 24)}${lpad(String(q.count), 3)} queries, ${q.totalMs.toFixed(2)} ms in the database`);
    for (const s of q.slowest) out.push(`      ${lpad(s.ms.toFixed(2), 7)} ms  ${short(s.sql)}`);
  }
  const { plans, planOk } = a.diagnostics;
  out.push(`Views tab page 5,000 query plans (${a.db.label}): the id query ${planOk ? 'walks the (link_id, viewed_at) index with no sort step' : 'DOES NOT walk the (link_id, viewed_at) index without sorting'}`);
  for (const p of plans) {
    out.push(`  ${p.role}: ${short(p.sql)}`);
    for (const line of p.plan) out.push(`      ${line}`);
  }
  out.push(`  ${check('Views tab page 5,000 id query: index, no sort', planOk ? 'yes' : 'no', 'index (link_id, viewed_at)', planOk)}`);

  out.push(`Pay page of the seeded database with view recording against the same page without it (browser user agents):`);
  for (const { node, bare, recording, without } of sets) {
    const rWithout = recording.rps / without.rps;
    const rBare = recording.rps / bare.rps;
    const bareGoal = bareTarget(node);
    out.push(` ${node.label}:`);
    out.push(`  ${check(`recording / no recording · ${node.label}`, rWithout.toFixed(3), `≥ ${TARGETS.recording.toFixed(2)}`, rWithout >= TARGETS.recording)}`);
    out.push(`  ${check(`recording / bare node:http · ${node.label}`, rBare.toFixed(3), `≥ ${bareGoal.toFixed(2)}`, rBare >= bareGoal)}`);
    // Each round of one runs right after the same round of the other: per-round ratios show the drift.
    const paired = recording.rounds.map((r, i) => (r.rps / without.rounds[i].rps).toFixed(3));
    out.push(`  recording / no recording per round (the two run back to back): ${paired.join(' / ')}`);
    if (recording.cpuUs !== null && without.cpuUs !== null) {
      out.push(`  by server CPU/request: no recording ${fmt(without.cpuUs)} µs, recording ${fmt(recording.cpuUs)} µs (ratio ${(without.cpuUs / recording.cpuUs).toFixed(3)}; cross-check, not the target)`);
    }
  }
  const c = a.counted;
  const equal = c.rows === c.counter && c.rows === c.rollups;
  out.push(` views recorded: ${fmt(c.rows)} (2xx pay pages answered with recording on, every Node: ${fmt(a.answered)}), counters equal rows: ${equal ? 'yes' : 'NO'} (views_count ${fmt(c.counter)}, hourly rollups ${fmt(c.rollups)})`);
  checks.push({ name: 'views: counter = rollups = rows', value: equal ? 'yes' : 'no', target: 'after a graceful stop', ok: equal });
  checks.push({ name: 'views: every 2xx recorded', value: `${fmt(c.rows)}/${fmt(a.answered)}`, target: 'rows ≥ answered', ok: c.rows >= a.answered });
  return out;
}

function summary(): string[] {
  const width = Math.max(...checks.map((c) => c.name.length), 5) + 2;
  const out = ['', 'Summary', `${pad('check', width)}${lpad('value', 16)}   ${pad('target', 34)}verdict`];
  for (const c of checks) out.push(`${pad(c.name, width)}${lpad(c.value, 16)}   ${pad(c.target, 34)}${verdict(c.ok)}`);
  const failed = checks.filter((c) => !c.ok).length;
  out.push(failed ? `${failed} of ${checks.length} checks FAIL (timings are reported, not asserted)` : `all ${checks.length} checks PASS`);
  return out;
}

async function main(): Promise<number> {
  log(`bench: ${CONNECTIONS} connections, ${WARMUP} s warm-up, ${ROUNDS} × ${DURATION / ROUNDS} s rounds per target${canPin ? `; servers on CPU ${serverCpu}, load on CPU ${loadCpus}` : ''}`);
  const targets: Target[] = [];
  try {
    // First, while nothing else runs: its event-loop and memory numbers are the scheduler's own.
    const reminders = await remindersBench();
    settle('reminders');
    const webhooks = await webhooksBench();
    settle('webhooks');
    const crypto = await cryptoBench();
    settle('crypto');
    const requests = await requestsBench();
    settle('requests');
    const smtp = await smtpBench();
    settle('smtp');
    const requestImport = await requestImportBench();
    settle('request-import');
    const adb = await analyticsDatabase();
    log(`seeding ${fmt(VIEWS)} views on ${adb.label}`);
    const seeded = await seedAnalytics(adb.env, VIEWS, log);
    log(`  seeded in ${seeded.seconds.toFixed(1)} s`);

    // The HTTP targets on each Node: this one, and Node 24 beside it (.ci/node24), in the same rounds.
    const other = otherNode();
    const nodes = [THIS_NODE, ...(other ? [other] : [])];
    let sandboxOnly: Target | null = null;
    let stripeServer: (Target & { also: Map<string, string> }) | null = null;
    const started: { node: NodeRun; bare: Target; express: Target; pays: Target[]; maria: boolean; recording: Target & { origin: string }; without: Target }[] = [];
    for (const node of nodes) {
      const suffix = node === THIS_NODE ? '' : `-${node.label.replace(/\W+/g, '')}`;
      const bare = await baseline(node, 'bare node:http hello', 'hello-node.ts');
      const express = await baseline(node, 'Express 5 hello', 'hello-express.ts');
      // What Stripe costs a pay page: the same server also serves the same page of a merchant on the
      // sandbox only (and, with BENCH_STRIPE_CONTROL_US, of a Stripe merchant whose pages are made
      // dearer on purpose), so the comparison shares the process, its memory and its CPU placement.
      const also: AlsoSeeded[] = STRIPE && node === THIS_NODE ? [{ handle: SANDBOX_HANDLE, sandboxOnly: true }, ...(STRIPE_CONTROL_US > 0 ? [{ handle: CONTROL_HANDLE, sandboxOnly: false, spinUs: STRIPE_CONTROL_US }] : [])] : [];
      const sqlitePay = await paylink(node, 'pay page, SQLite', { DATABASE_URL: path.join(tmp, `paylink${suffix}.db`) }, STRIPE, also);
      const pays: Target[] = [sqlitePay];
      if (also.length) stripeServer = sqlitePay;
      // The same page from a server of its own whose merchant takes the sandbox only: the comparison
      // across processes, as a cross-check. Started and measured right after it in every round.
      if (STRIPE && node === THIS_NODE) sandboxOnly = await paylink(THIS_NODE, 'pay page, SQLite, sandbox only', { DATABASE_URL: path.join(tmp, 'paylink-sandbox.db') }, false);
      const maria = await mariadbTarget(node);
      if (maria) pays.push(maria);
      // Every Node's recording server writes to the same seeded database (measured one at a time).
      const recording = await analyticsTarget(node, `pay page, ${adb.label}, recording`, adb, seeded, true);
      const without = await analyticsTarget(node, `pay page, ${adb.label}, no recording`, adb, seeded, false);
      targets.push(bare, express, pays[0], ...(node === THIS_NODE && sandboxOnly ? [sandboxOnly] : []), ...pays.slice(1), recording, without);
      started.push({ node, bare, express, pays, maria: Boolean(maria), recording, without });
    }

    // Dashboard latency first, while nothing else runs.
    log(`  dashboard pages: ${LATENCY_WARMUP} warm-up + ${LATENCY_REQUESTS} requests each`);
    const latency = await measureLatency(started[0].recording.origin, pageCases(seeded), LATENCY_WARMUP, LATENCY_REQUESTS);
    log('  diagnostics: service timings, query profiles, query plans');
    const diagnostics = await diagnose(adb.env, seeded, 20);

    const measured = await measureAll(targets);
    // The Stripe cost in pairs of short rounds, after the interleaved rounds (every server warm).
    let stripeCost: StripeCost | null = null;
    if (stripeServer && sandboxOnly) {
      const sandboxPage = samePage(stripeServer, SANDBOX_HANDLE, 'pay page, SQLite, sandbox-only merchant (same server)');
      await cannon(sandboxPage, WARMUP);
      log(`  Stripe / sandbox only, same server: ${PAIRS} pairs of ${PAIR_SECONDS} s rounds`);
      const pairs = await paired(stripeServer, sandboxPage);
      log(`  Stripe / sandbox only, servers of their own: ${PAIRS} pairs of ${PAIR_SECONDS} s rounds`);
      const across = await paired(stripeServer, sandboxOnly);
      let control: StripeCost['control'] = null;
      if (STRIPE_CONTROL_US > 0) {
        const dearer = samePage(stripeServer, CONTROL_HANDLE, `pay page, SQLite, Stripe +${STRIPE_CONTROL_US} µs (control)`);
        await cannon(dearer, WARMUP);
        log(`  negative control: ${PAIRS} pairs of ${PAIR_SECONDS} s rounds`);
        control = { spinUs: STRIPE_CONTROL_US, pairs: await paired(dearer, sandboxPage) };
      }
      stripeCost = { pairs, across, control };
    }
    // Each page's p99 against Express's in pairs of short back-to-back rounds (as the Stripe cost):
    // the p99 of one best round swung 4.7–7.2 ms for the same Express server and 6.7–20 ms for the
    // same page in adjacent rounds, so one pair of best rounds decided the check by chance.
    const p99Pairs = new Map<string, Paired>();
    for (const s of started) {
      for (const page of [...s.pays, s.recording]) {
        // Warm again first: the page may have sat idle through every other target's pairs.
        await cannon(page, WARMUP);
        log(`  p99 against Express, ${page.name}: ${PAIRS} pairs of ${PAIR_SECONDS} s rounds`);
        p99Pairs.set(page.name, await paired(page, s.express));
      }
    }
    let p99Control: { stallMs: number; node: string; pairs: Paired } | null = null;
    if (P99_CONTROL_MS > 0) {
      // On the newest Node measured: Node 20's Express hello-world answers so slowly (p99 ~20–30 ms
      // at 50 connections) that a stall of a few ms hides in it; Node 24's (~4–5 ms) is the tight case.
      const { node, express } = started[started.length - 1];
      const stalled = await baseline(node, `Express 5 hello, ${P99_CONTROL_MS} ms stall every ${P99_CONTROL_EVERY_MS} ms (control)`, 'hello-express.ts', { BENCH_STALL_MS: String(P99_CONTROL_MS), BENCH_STALL_EVERY_MS: String(P99_CONTROL_EVERY_MS) }, ['test/bench/spin.ts']);
      targets.push(stalled);
      await cannon(stalled, WARMUP);
      log(`  p99 negative control: ${PAIRS} pairs of ${PAIR_SECONDS} s rounds`);
      p99Control = { stallMs: P99_CONTROL_MS, node: node.label, pairs: await paired(stalled, express) };
    }
    const byName = (t: Target) => measured.find((m) => m.name === t.name)!;
    // A graceful stop writes every queued view; then the rows must equal the counters.
    let answered = 0;
    for (const s of started) {
      await s.recording.stop();
      targets.splice(targets.indexOf(s.recording), 1);
      answered += s.recording.answered;
    }
    const counted = await countViews(adb.env, seeded);

    const sets: NodeSet[] = started.map((s) => ({
      node: s.node,
      bare: byName(s.bare),
      express: byName(s.express),
      pays: [...s.pays.map(byName), ...(s.maria ? [] : [{ name: named(s.node, 'pay page, MariaDB + Redis'), skipped: 'skipped: MariaDB not reachable' }])],
      recording: byName(s.recording),
      without: byName(s.without),
      p99: p99Pairs,
    }));
    const out = header(nodes);
    for (const set of sets) out.push(...report(set));
    if (sandboxOnly) {
      const rest = byName(sandboxOnly);
      out.push('', `${pad(rest.name, 44)}${lpad(fmt(rest.rps), 10)}${lpad(rest.p50.toFixed(2), 9)}${lpad(rest.p99.toFixed(2), 9)}${lpad(fmt(rest.non2xx), 9)}${lpad(fmt(rest.errors), 8)}`);
    }
    if (sets.length > 1) out.push(...sideBySide(sets));
    if (p99Control) {
      const c = median(p99Control.pairs.p99Ratios);
      out.push('', `p99 negative control (${p99Control.node}): an Express hello-world whose event loop stalls ${p99Control.stallMs} ms every ${P99_CONTROL_EVERY_MS} ms (spin.ts), against the Express hello-world: median ${c.toFixed(2)} (middle half ${quartiles(p99Control.pairs.p99Ratios)}) — ${c > TARGETS.p99VsExpress ? 'above the target: stalls of that size are caught' : 'NOT above the target: the pairs cannot see stalls of that size'}`);
    }
    out.push(...reportAnalytics({ db: adb, seeded, latency, diagnostics, answered, counted }, sets));
    if (sandboxOnly && stripeCost) out.push(...reportStripeCost(byName(started[0].pays[0]), byName(sandboxOnly), stripeCost));
    if (reminders) out.push(...reportReminders(reminders, check));
    if (webhooks) out.push(...reportWebhooks(webhooks, check));
    if (crypto) out.push(...reportCrypto(crypto, check));
    if (requests) out.push(...reportRequests(requests, check));
    if (smtp) out.push(...reportSmtp(smtp, check));
    if (requestImport) out.push(...reportRequestImport(requestImport, check));
    out.push(...summary());
    process.stdout.write(out.join('\n') + '\n');

    const failed = measured.filter((m) => m.non2xx > 0 || m.errors > 0);
    for (const m of failed) process.stderr.write(`bench: ${m.name} answered ${m.non2xx} non-2xx responses and ${m.errors} errors\n`);
    const badPages = latency.filter((l) => l.bad > 0);
    for (const l of badPages) process.stderr.write(`bench: ${l.case.path} answered ${l.bad} non-200 responses\n`);
    const lost = counted.rows !== counted.counter || counted.rows !== counted.rollups;
    if (lost) process.stderr.write('bench: the pay link\'s view counters differ from its rows\n');
    const remindersWrong = reminders !== null && !remindersCorrect(reminders);
    if (remindersWrong) process.stderr.write('bench: the reminders sweep did not send each due reminder exactly once\n');
    const webhooksWrong = webhooks !== null && !webhooksCorrect(webhooks);
    if (webhooksWrong) process.stderr.write('bench: outgoing webhooks did not deliver each event exactly once per endpoint\n');
    const cryptoWrong = crypto !== null && !cryptoCorrect(crypto);
    if (cryptoWrong) process.stderr.write('bench: the crypto watcher read a block twice or missed a paid checkout\n');
    const smtpWrong = smtp !== null && !smtpCorrect(smtp);
    if (smtpWrong) process.stderr.write('bench: the SMTP drain did not send each message exactly once\n');
    const badPairs = stripeCost ? stripeCost.pairs.bad + stripeCost.across.bad + (stripeCost.control?.pairs.bad ?? 0) : 0;
    if (badPairs) process.stderr.write(`bench: the Stripe / sandbox-only pairs answered ${badPairs} non-2xx responses or errors\n`);
    return failed.length || badPairs || badPages.length || lost || remindersWrong || webhooksWrong || cryptoWrong || smtpWrong ? 1 : 0;
  } finally {
    for (const t of targets) await t.stop();
  }
}

let code = 1;
try {
  code = await main();
} catch (err) {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
} finally {
  for (const c of children) c.kill('SIGKILL');
  for (const fn of cleanups.reverse()) await fn().catch((err) => process.stderr.write(`bench cleanup: ${String(err)}\n`));
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(code);
