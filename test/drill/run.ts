/**
 * `npm run drill [name…]`: fault drills. Each starts its own Redis / MariaDB / SMTP on other ports
 * (never the machine's shared ones), injects a fault (SIGSTOP/SIGCONT, SIGKILL, a 421-answering SMTP
 * server, a full tmpfs) and reports figures with PASS/FAIL. Not part of CI; the key cases are in the
 * test suite (health, storage-full, jobs tests). Exits 1 when a check fails.
 *
 * Names: redis, database, smtp, worker, disk (default: all, in that order).
 */
import type { Drill, Finding } from './support.ts';
import { redisDrill } from './redis.ts';
import { databaseDrill } from './database.ts';
import { smtpDrill } from './smtp.ts';
import { workerKillDrill } from './worker-kill.ts';
import { diskFullDrill } from './disk-full.ts';

const DRILLS: Record<string, Drill> = { redis: redisDrill, database: databaseDrill, smtp: smtpDrill, worker: workerKillDrill, disk: diskFullDrill };

const wanted = process.argv.slice(2);
for (const name of wanted) if (!DRILLS[name]) throw new Error(`unknown drill ${name}; known: ${Object.keys(DRILLS).join(', ')}`);
const findings: Finding[] = [];
const started = Date.now();

for (const [name, drill] of Object.entries(DRILLS)) {
  if (wanted.length && !wanted.includes(name)) continue;
  const cleanups: (() => Promise<void> | void)[] = [];
  const t0 = Date.now();
  console.log(`\n▶ ${drill.name}`);
  try {
    const found = await drill.run({
      defer: (c) => void cleanups.push(c),
      log: (line) => console.log(`  ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s  ${line}`),
    });
    for (const f of found) console.log(`  ${f.pass ? 'PASS' : 'FAIL'}  ${f.check}: ${f.figure}`);
    findings.push(...found);
  } catch (err) {
    console.log(`  FAIL  the drill did not finish: ${(err as Error).stack ?? err}`);
    findings.push({ drill: drill.name, check: 'the drill finishes', figure: String((err as Error).message ?? err), pass: false });
  } finally {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch((err) => console.log(`  (cleanup: ${(err as Error).message})`));
  }
  console.log(`  (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

console.log(`\nFault drills — summary (${((Date.now() - started) / 1000).toFixed(0)} s)`);
const width = Math.max(...findings.map((f) => f.drill.length));
for (const f of findings) console.log(`${f.pass ? 'PASS' : 'FAIL'}  ${f.drill.padEnd(width)}  ${f.check}: ${f.figure}`);
const failed = findings.filter((f) => !f.pass).length;
console.log(failed ? `\n${failed} check(s) FAILED` : `\nall ${findings.length} checks passed`);
process.exit(failed ? 1 : 0);
