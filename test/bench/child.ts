// Runs one bench measurement in a fresh Node process (its memory and event loop are the measured
// thing's alone) and answers the JSON its last stdout line prints. BENCH_PROFILE=<dir> writes a V8
// CPU profile of that process, as run.ts does for its servers.
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export async function runBenchChild<T>(opts: {
  /** The bench file in this folder that measures when `childVar` is set, e.g. `reminders`. */
  name: string;
  label: string;
  env: Record<string, string>;
  /** The environment variable that tells the child what to measure, and its value. */
  childVar: string;
  payload: unknown;
  nodeArgs?: string[];
  log: (line: string) => void;
}): Promise<T> {
  const prof = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.join(path.resolve(process.env.BENCH_PROFILE), `${opts.name}-${opts.label.replace(/\W+/g, '-')}`)}`] : [];
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...prof, '--import', 'tsx', path.join(HERE, `${opts.name}.ts`)], {
    cwd: path.resolve(HERE, '../..'),
    env: { ...process.env, ...opts.env, [opts.childVar]: JSON.stringify(opts.payload) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  if (process.env.CHILD_STDOUT) (await import('node:fs')).writeFileSync(process.env.CHILD_STDOUT, stdout);
  if (code !== 0) throw new Error(`the ${opts.name} bench exited with ${code}:\n${stderr}${stdout.slice(-4_000)}`);
  if (stderr.trim()) opts.log(`  ${opts.name} bench output (LOG_LEVEL=warn):\n    ${stderr.trim().slice(-1_500).split('\n').join('\n    ')}`);
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}
