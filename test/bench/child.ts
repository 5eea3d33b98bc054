// Runs one bench measurement in a fresh Node process (its memory and event loop are the measured
// thing's alone) and answers the JSON its last stdout line prints. BENCH_PROFILE=<dir> writes a V8
// CPU profile of that process, as run.ts does for its servers.
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The CPUs measured processes run on (a taskset list, e.g. `0-1`), or null: those this process has. */
let measuredCpu: string | null = null;

/**
 * Runs every measured process from now on on the CPUs `cpu` names (taskset): run.ts names them all,
 * as its own process is pinned to the load generator's CPUs and a child would inherit that.
 */
export function pinMeasuredTo(cpu: string | null): void {
  measuredCpu = cpu;
}

export async function runBenchChild<T>(opts: {
  /** The bench file in this folder that measures when `childVar` is set, e.g. `reminders`. */
  name: string;
  label: string;
  env: Record<string, string>;
  /** The environment variable that tells the child what to measure, and its value. */
  childVar: string;
  payload: unknown;
  nodeArgs?: string[];
  /** Opens an IPC channel to the child and hands it over once spawned (e.g. to tell it what arrived elsewhere). */
  withChild?: (child: ChildProcess) => void;
  log: (line: string) => void;
}): Promise<T> {
  const prof = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.join(path.resolve(process.env.BENCH_PROFILE), `${opts.name}-${opts.label.replace(/\W+/g, '-')}`)}`] : [];
  const cmd = [process.execPath, ...(opts.nodeArgs ?? []), ...prof, '--import', 'tsx', path.join(HERE, `${opts.name}.ts`)];
  const [file, ...args] = measuredCpu ? ['taskset', '-c', measuredCpu, ...cmd] : cmd;
  const proc = spawn(file!, args, {
    cwd: path.resolve(HERE, '../..'),
    env: { ...process.env, ...opts.env, [opts.childVar]: JSON.stringify(opts.payload) },
    stdio: opts.withChild ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  opts.withChild?.(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => (stdout += d));
  proc.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  if (code !== 0) throw new Error(`the ${opts.name} bench exited with ${code}:\n${stderr}${stdout.slice(-4_000)}`);
  if (stderr.trim()) opts.log(`  ${opts.name} bench output (LOG_LEVEL=warn):\n    ${stderr.trim().slice(-1_500).split('\n').join('\n    ')}`);
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

/**
 * A fresh database for a bench file run on its own (`npx tsx test/bench/<part>.ts`): a SQLite file in
 * a temporary folder, or a new database on BENCH_DATABASE_URL's MariaDB server (+ BENCH_REDIS_URL).
 * `cleanup()` drops it and the folder.
 */
export async function standaloneDatabase(part: string): Promise<{ env: Record<string, string>; label: string; cleanup: () => Promise<void> }> {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `paylink-bench-${part}-`));
  const serverUrl = process.env.BENCH_DATABASE_URL?.trim() || null;
  const dbName = `paylink_bench_${Math.random().toString(36).slice(2, 8)}_${part}`;
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PAYLINK_DATA_DIR: tmp,
    REDIS_PREFIX: dbName,
    SESSION_SECRET: 'bench-session-secret-0123456789-abcdefghijklmnop',
    BASE_URL: 'http://127.0.0.1:3000',
  };
  let drop: (() => Promise<void>) | null = null;
  if (serverUrl) {
    const mysql = (await import('mysql2/promise')).default;
    const admin = await mysql.createConnection({ uri: serverUrl });
    await admin.query(`CREATE DATABASE \`${dbName}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    drop = async () => {
      await admin.query(`DROP DATABASE IF EXISTS \`${dbName}\``);
      await admin.end();
    };
    const u = new URL(serverUrl);
    u.pathname = `/${dbName}`;
    env.DATABASE_URL = u.toString();
    env.REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
  } else {
    env.DATABASE_URL = path.join(tmp, `${part}.db`);
  }
  return {
    env,
    label: serverUrl ? 'MariaDB + Redis' : 'SQLite',
    cleanup: async () => {
      await drop?.().catch(() => {});
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** A check line of a standalone run's report (run.ts prints its own). */
export type CheckFn = (name: string, value: string, target: string, ok: boolean) => string;

/**
 * Runs a bench file on its own: a fresh database (standaloneDatabase), `measure` prints its report
 * lines, then the load average; exits 0 when `measure` says the outcome was correct, else 1.
 */
export async function runStandalone(part: string, measure: (db: { env: Record<string, string>; label: string }, log: (line: string) => void, check: CheckFn) => Promise<{ lines: string[]; correct: boolean }>): Promise<never> {
  const os = await import('node:os');
  const { env, label, cleanup } = await standaloneDatabase(part);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const check: CheckFn = (name, value, target, ok) => `${name.padEnd(48)}${value.padStart(9)}   ${target.padEnd(30)}${ok ? 'PASS' : 'FAIL'}`;
  let code = 1;
  try {
    const { lines, correct } = await measure({ env, label }, log, check);
    process.stdout.write(`${[...lines, `load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`].join('\n')}\n`);
    code = correct ? 0 : 1;
  } catch (err) {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`bench failed: ${text.length > 3_000 ? `${text.slice(0, 1_500)} … ${text.slice(-1_500)}` : text}\n`);
  } finally {
    await cleanup();
  }
  process.exit(code);
}

/**
 * The lag probe of the measured processes: a 1 ms interval timer; how late each tick comes is how long
 * the event loop was held. `take()` answers the gaps seen since the last take (or start) and starts
 * afresh; `onTick` runs on every tick (e.g. to sample memory).
 */
export function loopGaps(onTick?: () => void): { take: () => number[]; takeBusy: () => number; stop: () => void } {
  let gaps: number[] = [];
  // The longest gap's part the process spent on the CPU (min(gap, CPU ms)): the rest was waiting for a CPU on a busy machine.
  let busyMax = 0;
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  const sampler = setInterval(() => {
    const now = performance.now();
    const gap = Math.max(0, now - last - 1);
    // One reading per tick (the probe runs on the measured thread: it should cost it little).
    const cpu = process.cpuUsage();
    gaps.push(gap);
    busyMax = Math.max(busyMax, Math.min(gap, (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000));
    last = now;
    lastCpu = cpu;
    onTick?.();
  }, 1);
  return {
    take: () => {
      const seen = gaps;
      gaps = [];
      last = performance.now();
      lastCpu = process.cpuUsage();
      return seen;
    },
    /** The longest busy part since the last call (see above); call it with `take`. */
    takeBusy: () => {
      const b = busyMax;
      busyMax = 0;
      return b;
    },
    stop: () => clearInterval(sampler),
  };
}
