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
