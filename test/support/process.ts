/**
 * Spawns the real server (`node --import tsx src/server.ts`) and the real CLI, the way a
 * self-hoster runs them, and reads their output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A clean environment: nothing from the test runner leaks in except what a shell needs. */
export function baseEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Spawned {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<Exit>;
}

export function spawnProcess(command: string, args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Spawned {
  const proc = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<Exit>((resolve) => proc.once('close', (code, signal) => resolve({ code, signal })));
  return { proc, stdout: () => out, stderr: () => err, exited };
}

/**
 * Runs a command to completion, however long a loaded machine takes to start it. `hungMs` only
 * catches a process that never exits (a leaked handle): it is killed and the run fails saying so.
 */
export async function run(command: string, args: string[], env: NodeJS.ProcessEnv, hungMs = 5 * 60_000): Promise<Exit & { stdout: string; stderr: string }> {
  const p = spawnProcess(command, args, env);
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    p.proc.kill('SIGKILL');
  }, hungMs);
  const exit = await p.exited;
  clearTimeout(timer);
  if (hung) throw new Error(`${command} ${args.join(' ')} did not exit within ${hungMs / 1000} s; killed.\nstdout: ${p.stdout()}\nstderr: ${p.stderr()}`);
  return { ...exit, stdout: p.stdout(), stderr: p.stderr() };
}

export interface ServerProcess extends Spawned {
  url: string;
  port: number;
  /** Sends a signal and waits for the exit; `ms` is how long the exit took. */
  stop(signal?: NodeJS.Signals): Promise<Exit & { ms: number }>;
}

const LISTENING = /Paylink listening on (http:\/\/[^\s]+?):(\d+)/;

/**
 * Starts `node --import tsx src/server.ts` and resolves once it logs its "listening on" line. On a
 * loaded machine a start takes many seconds: `timeoutMs` only catches a server that never listens.
 */
export async function startServerProcess(env: NodeJS.ProcessEnv, timeoutMs = 3 * 60_000): Promise<ServerProcess> {
  const p = spawnProcess(process.execPath, ['--import', 'tsx', 'src/server.ts'], env);
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      p.proc.kill('SIGKILL');
      reject(new Error(`server did not start within ${timeoutMs} ms:\n${p.stderr()}`));
    }, timeoutMs);
    const check = () => {
      const m = LISTENING.exec(p.stderr()) ?? LISTENING.exec(p.stdout());
      if (m) {
        clearTimeout(timer);
        p.proc.stderr!.off('data', check);
        p.proc.stdout!.off('data', check);
        resolve(m);
      }
    };
    p.proc.stderr!.on('data', check);
    p.proc.stdout!.on('data', check);
    void p.exited.then((exit) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${exit.code ?? exit.signal}) before listening:\n${p.stderr()}`));
    });
  });
  const port = Number(match[2]);
  return {
    ...p,
    url: `http://127.0.0.1:${port}`,
    port,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const started = Date.now();
      if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill(signal);
      const exit = await p.exited;
      return { ...exit, ms: Date.now() - started };
    },
  };
}

/** Kills a process that a failed test left running. */
export async function ensureStopped(p: Spawned | undefined): Promise<void> {
  if (!p || p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  p.proc.kill('SIGKILL');
  await p.exited;
}
