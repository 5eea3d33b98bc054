/**
 * `npm run bench`: pay-page throughput and latency against two baselines measured in the same run.
 *
 * Servers run in child processes (pinned to the last CPU when there are ≥ 2); the load generator
 * (autocannon, in this process, pinned to the other CPUs) drives each with 50 connections: a
 * warm-up, then the measured seconds in interleaved rounds (bare, Express, SQLite, MariaDB, bare…),
 * each target keeping its best round, so a burst of other work on the machine hits one round of
 * one target rather than a whole target. Server CPU time per request is printed as a steadier
 * cross-check. Targets:
 *   1. bare node:http hello-world         2. Express 5 hello-world
 *   3. Paylink pay page on SQLite          4. Paylink pay page on MariaDB + Redis (if reachable)
 * Paylink runs as in production (NODE_ENV=production, LOG_LEVEL=warn) on a fresh database seeded
 * with one merchant and one amount link. It prints req/s, p50/p99 and the ratios with the targets
 * from the issue; it asserts no timings (the numbers depend on the machine) but exits 1 when a
 * target answered errors or non-2xx, or could not start.
 *
 * Environment: BENCH_DURATION (measured s per target, default 8), BENCH_ROUNDS (2), BENCH_WARMUP
 * (s, 2), BENCH_CONNECTIONS (50),
 * BENCH_MYSQL_URL (mysql://root@127.0.0.1:3306), BENCH_REDIS_URL (redis://127.0.0.1:6379),
 * BENCH_PROFILE=<dir> (write a .cpuprofile per Paylink server, for `node --cpu-prof`-style analysis).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon, { type Result } from 'autocannon';
import mysql from 'mysql2/promise';
import { createClient } from 'redis';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HERE = path.join(ROOT, 'test/bench');
const DURATION = Number(process.env.BENCH_DURATION ?? 8);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
/** The measured seconds are split into interleaved rounds; each target reports its best round. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** When set, Paylink servers write a V8 CPU profile there (open in Chrome DevTools or speedscope). */
const PROFILE_DIR = process.env.BENCH_PROFILE ? path.resolve(process.env.BENCH_PROFILE) : null;
const TARGETS = { bare: 0.1, express: 0.6, p99Ms: 20 };
const SESSION_SECRET = 'bench-session-secret-0123456789-abcdefghijklmnop';

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

function log(line: string): void {
  process.stderr.write(`${line}\n`);
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

/** Runs a TypeScript entry point under tsx, pinned to the server CPU. */
function start(script: string, env: Record<string, string>, nodeArgs: string[] = []): Child {
  const cmd = [process.execPath, ...nodeArgs, '--import', 'tsx', script];
  const [file, ...args] = canPin ? ['taskset', '-c', serverCpu, ...cmd] : cmd;
  const proc = spawn(file, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
  url: string;
  pid: number;
  bytes: number;
  notes: string[];
  /** Bytes the server has sent to Redis so far (MariaDB target only). */
  redisSent?: () => number;
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
  url: string;
  bytes: number;
  notes: string[];
  rounds: Round[];
}

function cannon(url: string, seconds: number, onResponse?: (ms: number) => void): Promise<Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon({ url, connections: CONNECTIONS, duration: seconds, pipelining: 1, timeout: 10 }, (err, result) => (err ? reject(err) : resolve(result)));
    if (onResponse) instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => onResponse(ms));
  });
}

/** One measured round; latency percentiles from every response at µs resolution. */
async function round(t: Target, seconds: number): Promise<Round> {
  const hist = createHistogram();
  const cpuBefore = cpuSeconds(t.pid);
  const redisBefore = t.redisSent?.() ?? null;
  const result = await cannon(t.url, seconds, (ms) => hist.record(Math.max(1, Math.round(ms * 1000))));
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
async function target(name: string, child: Child, url: string, notes: string[] = []): Promise<Target> {
  const res = await fetch(url);
  const bytes = (await res.arrayBuffer()).byteLength;
  return { name, url, pid: child.proc.pid!, bytes, notes, stop: () => stop(child) };
}

async function baseline(name: string, script: string): Promise<Target> {
  const port = await freePort();
  const child = start(path.join(HERE, script), { PORT: String(port), NODE_ENV: 'production' });
  const url = `http://127.0.0.1:${port}/`;
  await waitUntilUp(url, child);
  return target(name, child, url);
}

interface PaylinkEnv {
  DATABASE_URL: string;
  REDIS_URL?: string;
}

async function paylink(name: string, dbEnv: PaylinkEnv): Promise<Target> {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(tmp, 'data-'));
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(port),
    BASE_URL: `http://127.0.0.1:${port}`,
    PAYLINK_DATA_DIR: dataDir,
    REDIS_PREFIX: `paylink_bench_${tag}`,
    SESSION_SECRET,
    ...dbEnv,
  };
  const seeded = JSON.parse(await runScript(path.join(HERE, 'seed.ts'), env)) as { handle: string; path: string };
  // One directory per server: every thread (tsx runs a loader thread) writes its own profile.
  const profile = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.join(PROFILE_DIR, `${name.replace(/\W+/g, '-')}-${tag}`)}`] : [];
  const child = start(path.join(ROOT, 'src/server.ts'), env, profile);
  const origin = `http://127.0.0.1:${port}`;
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
  const t = await target(name, child, url, notes);
  return {
    ...t,
    stop: async () => {
      await stop(child);
      const said = child.output().trim();
      if (said) log(`  ${name} server output (LOG_LEVEL=warn):\n    ${said.slice(-1_500).split('\n').join('\n    ')}`);
    },
  };
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

async function mariadbTarget(): Promise<Target | null> {
  if (!(await mariadbReachable())) return null;
  const dbName = `paylink_bench_${tag}`;
  const admin = await mysql.createConnection({ uri: MYSQL_URL });
  await admin.query(`CREATE DATABASE \`${dbName}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  cleanups.push(async () => {
    await admin.query(`DROP DATABASE IF EXISTS \`${dbName}\``);
    await admin.end();
  });
  cleanups.push(async () => {
    const redis = createClient({ url: REDIS_URL });
    redis.on('error', () => {});
    await redis.connect();
    for await (const keys of redis.scanIterator({ MATCH: `paylink_bench_${tag}:*`, COUNT: 500 })) if (keys.length) await redis.del(keys);
    await redis.quit();
  });
  const proxy = await countingProxy(new URL(REDIS_URL));
  cleanups.push(proxy.close);
  const db = new URL(MYSQL_URL);
  db.pathname = `/${dbName}`;
  const t = await paylink('pay page, MariaDB + Redis', { DATABASE_URL: db.toString(), REDIS_URL: proxy.url });
  return { ...t, redisSent: proxy.sent };
}

/** Warm every target, then ROUNDS interleaved rounds; each target keeps its best round (most req/s). */
async function measureAll(targets: Target[]): Promise<Measured[]> {
  for (const t of targets) {
    log(`  warm-up ${t.name}`);
    await cannon(t.url, WARMUP);
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

function report(bare: Measured, express: Measured, pays: (Measured | { name: string; skipped: string })[]): void {
  const out: string[] = [];
  out.push('');
  out.push(`Paylink bench — Node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${cpus}, ${CONNECTIONS} connections, ${WARMUP} s warm-up, best of ${ROUNDS} × ${DURATION / ROUNDS} s rounds`);
  out.push(canPin ? `servers pinned to CPU ${serverCpu}, load generator (autocannon) to CPU ${loadCpus}` : 'CPU pinning unavailable: servers and load generator share CPUs');
  out.push(`load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on the machine skews the numbers)`);
  out.push('');
  out.push(`${pad('target', 28)}${lpad('req/s', 10)}${lpad('p50 ms', 9)}${lpad('p99 ms', 9)}${lpad('non-2xx', 9)}${lpad('errors', 8)}${lpad('bytes', 8)}${lpad('CPU µs/req', 12)}  all rounds req/s  path`);
  for (const m of [bare, express, ...pays]) {
    if ('skipped' in m) {
      out.push(`${pad(m.name, 28)}${m.skipped}`);
      continue;
    }
    out.push(`${pad(m.name, 28)}${lpad(fmt(m.rps), 10)}${lpad(m.p50.toFixed(2), 9)}${lpad(m.p99.toFixed(2), 9)}${lpad(fmt(m.non2xx), 9)}${lpad(fmt(m.errors), 8)}${lpad(fmt(m.bytes), 8)}${lpad(m.cpuUs === null ? '–' : fmt(m.cpuUs), 12)}  ${pad(m.rounds.map((r) => fmt(r.rps)).join(' / '), 16)}  ${new URL(m.url).pathname}`);
  }
  out.push('');
  for (const m of pays) {
    if ('skipped' in m) continue;
    const rBare = m.rps / bare.rps;
    const rExpress = m.rps / express.rps;
    const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
    out.push(`${m.name}:`);
    out.push(`  pay / bare node:http   ${lpad(rBare.toFixed(3), 7)}   target ≥ ${TARGETS.bare.toFixed(2)}    ${verdict(rBare >= TARGETS.bare)}`);
    out.push(`  pay / Express hello    ${lpad(rExpress.toFixed(3), 7)}   target ≥ ${TARGETS.express.toFixed(2)}    ${verdict(rExpress >= TARGETS.express)}`);
    out.push(`  pay p99                ${lpad(m.p99.toFixed(2), 7)}   target ≤ ${TARGETS.p99Ms} ms   ${verdict(m.p99 <= TARGETS.p99Ms)}`);
    if (m.cpuUs !== null && bare.cpuUs !== null && express.cpuUs !== null) {
      // The same ratios from server CPU per request: less sensitive to other load on the machine.
      out.push(`  by server CPU/request: bare/pay ${(bare.cpuUs / m.cpuUs).toFixed(3)}, Express/pay ${(express.cpuUs / m.cpuUs).toFixed(3)} (cross-check, not the target)`);
    }
    for (const n of m.notes ?? []) out.push(`  ${n}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

async function main(): Promise<number> {
  log(`bench: ${CONNECTIONS} connections, ${WARMUP} s warm-up, ${ROUNDS} × ${DURATION / ROUNDS} s rounds per target${canPin ? `; servers on CPU ${serverCpu}, load on CPU ${loadCpus}` : ''}`);
  const targets: Target[] = [];
  try {
    targets.push(await baseline('bare node:http hello', 'hello-node.ts'));
    targets.push(await baseline('Express 5 hello', 'hello-express.ts'));
    targets.push(await paylink('pay page, SQLite', { DATABASE_URL: path.join(tmp, 'paylink.db') }));
    const maria = await mariadbTarget();
    if (maria) targets.push(maria);
    const measured = await measureAll(targets);
    const [bare, express, ...pays] = measured;
    report(bare, express, maria ? pays : [...pays, { name: 'pay page, MariaDB + Redis', skipped: 'skipped: MariaDB not reachable' }]);
    const failed = measured.filter((m) => m.non2xx > 0 || m.errors > 0);
    for (const m of failed) process.stderr.write(`bench: ${m.name} answered ${m.non2xx} non-2xx responses and ${m.errors} errors\n`);
    return failed.length ? 1 : 0;
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
