/**
 * Sending at scale through the real SMTP path, in `npm run bench` (issue 15, part 2): BENCH_SMTP
 * (default 10,000) due reminders are swept into email deliveries, then the job queue drains them
 * through channel-email (nodemailer, one connection pool) to a real SMTP server on loopback
 * (smtp-server). The SMTP server runs in the bench's own process, as in requests.ts, and tells the
 * measured process over IPC of each email it accepts, so the measured process does only its own work.
 *   - drain rate: messages accepted by the server per second, from the start of the handoff to the
 *     last acceptance (aim ≥ 500/s), and the SMTP connections the server saw (one pool: a few);
 *   - a slow server: BENCH_SMTP_SLOW (default 200) more messages while the server answers each DATA
 *     BENCH_SMTP_DELAY_MS (default 100) late; the longest event-loop block meanwhile (aim ≤ 20 ms);
 *   - the outcome: every message accepted exactly once (distinct Message-IDs), every delivery `sent`.
 * Both phases sample the event loop with a 1 ms interval timer, as reminders.ts does.
 *
 * Standalone: `npx tsx test/bench/smtp.ts` (SQLite; BENCH_DATABASE_URL=mysql://root@127.0.0.1:3306 for
 * a fresh MariaDB database + BENCH_REDIS_URL). BENCH_NODE_ARGS: space-separated flags for the measured
 * process (e.g. `--cpu-prof`).
 */
import { loopGaps, runBenchChild, runStandalone, type CheckFn } from './child.ts';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { NOW, seedReminders, type RemindersSeeded } from './reminders.ts';

export const SMTP_AIMS = { perSecond: 500, blockMs: 20 };

export interface SmtpResult {
  label: string;
  messages: number;
  sweepSeconds: number;
  drainSeconds: number;
  perSecond: number;
  blockMs: number;
  slow: { messages: number; delayMs: number; seconds: number; blockMs: number };
  /** SMTP sessions the server saw (filled in by the parent). */
  connections: number;
  correct: Record<string, { value: number; expected: number }>;
}

/** Parent → child: how many emails the server has accepted. Child → parent: make the server slow. */
type ToChild = { accepted: number; at: number } | { slowAck: true };
type ToParent = { slowMs: number };

// ---------------------------------------------------------------- the measured process

async function child(spec: { seeded: RemindersSeeded; label: string; slow: number; delayMs: number }): Promise<void> {
  const { loadConfig } = await import('../../src/config.ts');
  const { createRuntime } = await import('../../src/runtime.ts');
  const { ManualClock } = await import('../../src/core/clock.ts');
  let accepted = 0;
  const waiting = new Set<() => void>();
  let slowAck: (() => void) | null = null;
  process.on('message', (m: ToChild) => {
    if ('slowAck' in m) return slowAck?.();
    accepted = m.accepted;
    for (const w of waiting) w();
  });
  const arrived = (n: number, limitMs: number) =>
    new Promise<number>((resolve, reject) => {
      const check = () => {
        if (accepted < n) return;
        clearTimeout(timer);
        waiting.delete(check);
        resolve(performance.now());
      };
      const timer = setTimeout(() => {
        waiting.delete(check);
        reject(new Error(`only ${accepted} of ${n} emails reached the SMTP server`));
      }, limitMs);
      waiting.add(check);
      check();
    });

  const rt = await createRuntime(loadConfig(process.env), { migrate: false, recordViews: false, clock: new ManualClock(NOW) });
  try {
    const db = rt.db;
    if (rt.registries.channels.ownerOf('email') !== 'channel-email') throw new Error('channel-email is not serving email (SMTP_URL?)');
    const probe = loopGaps();
    const block = () => probe.take().reduce((m, g) => Math.max(m, g), 0);
    const left = async () => Number(((await db('deliveries').whereIn('status', ['queued', 'sending']).count({ n: '*' })) as { n: number | string }[])[0].n);
    const drain = async () => {
      for (let round = 0; round < 50 && (await left()); round++) await rt.jobs.drain();
    };

    const t0 = performance.now();
    const taken = await rt.services.reminders.sweep(600_000);
    const t1 = performance.now();
    block();
    await drain();
    const done = await arrived(spec.seeded.due, 120_000);
    const blockMs = block();
    const drainSeconds = (done - t1) / 1000;

    // The slow server: the same recipients again, as first messages, while each DATA answer waits.
    const again = (await db('deliveries').where({ kind: 'reminder', status: 'sent' }).orderBy('id').limit(spec.slow).select('merchant_id', 'link_id', 'customer_id', 'to_address')) as { merchant_id: number; link_id: number; customer_id: number; to_address: string }[];
    await new Promise<void>((resolve) => {
      slowAck = resolve;
      process.send!({ slowMs: spec.delayMs } satisfies ToParent);
    });
    block();
    const s0 = performance.now();
    await db.transaction((trx) => rt.services.deliveries.queue(trx, again.map((d) => ({ merchantKey: d.merchant_id, linkKey: d.link_id, customerKey: d.customer_id, channel: 'email', kind: 'initial' as const, to: d.to_address }))));
    await drain();
    const slowDone = await arrived(spec.seeded.due + again.length, 300_000);
    const slowBlock = block();
    probe.stop();

    const count = async (where: Record<string, unknown>) => Number(((await db('deliveries').where(where).count({ n: '*' })) as { n: number | string }[])[0].n);
    const result: SmtpResult = {
      label: spec.label,
      messages: spec.seeded.due,
      sweepSeconds: (t1 - t0) / 1000,
      drainSeconds,
      perSecond: spec.seeded.due / drainSeconds,
      blockMs,
      slow: { messages: again.length, delayMs: spec.delayMs, seconds: (slowDone - s0) / 1000, blockMs: slowBlock },
      connections: 0,
      correct: {
        'plans taken by the sweep': { value: taken, expected: spec.seeded.due },
        'reminder emails sent': { value: await count({ kind: 'reminder', status: 'sent', channel: 'email' }), expected: spec.seeded.due },
        'emails sent to the slow server': { value: await count({ kind: 'initial', status: 'sent', channel: 'email' }), expected: spec.slow },
        'deliveries not sent': { value: Number(((await db('deliveries').whereNot('status', 'sent').count({ n: '*' })) as { n: number | string }[])[0].n), expected: 0 },
      },
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await rt.close();
    // The IPC channel would keep this process alive.
    process.disconnect?.();
  }
}

// ---------------------------------------------------------------- the bench's side

/** Seeds `messages` due reminders, then measures the drain through a loopback SMTP server run here. */
export async function measureSmtp(env: Record<string, string>, messages: number, label: string, log: (line: string) => void, opts: { slow?: number; delayMs?: number } = {}): Promise<SmtpResult> {
  const slow = opts.slow ?? Number(process.env.BENCH_SMTP_SLOW ?? 200);
  const delayMs = opts.delayMs ?? Number(process.env.BENCH_SMTP_DELAY_MS ?? 100);
  const seeded = await seedReminders(env, messages, 0, log);
  const { startSmtp } = await import('../support/smtp.ts');
  let measured: ChildProcess | null = null;
  const ids = new Map<string, number>();
  let accepted = 0;
  const smtp = await startSmtp({
    onMessage: (mail) => {
      accepted++;
      const id = mail.headers.get('message-id') ?? '';
      ids.set(id, (ids.get(id) ?? 0) + 1);
      if (measured?.connected) measured.send({ accepted, at: performance.timeOrigin + performance.now() } satisfies ToChild);
    },
  });
  try {
    const result = await runBenchChild<SmtpResult>({
      name: 'smtp',
      label,
      env: { ...env, SMTP_URL: smtp.url, MAIL_FROM: 'bench@paylink.test' },
      childVar: 'BENCH_SMTP_CHILD',
      payload: { seeded, label, slow, delayMs },
      nodeArgs: process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : [],
      withChild: (c) => {
        measured = c;
        c.on('message', (m: ToParent) => {
          smtp.delay(m.slowMs);
          c.send({ slowAck: true } satisfies ToChild);
        });
      },
      log,
    });
    result.connections = smtp.connections;
    const total = result.messages + result.slow.messages;
    result.correct['emails the server accepted'] = { value: accepted, expected: total };
    result.correct['distinct Message-IDs'] = { value: ids.size, expected: total };
    result.correct['Message-IDs accepted twice'] = { value: [...ids.values()].filter((n) => n > 1).length, expected: 0 };
    return result;
  } finally {
    await smtp.close();
  }
}

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

export function reportSmtp(r: SmtpResult, check: CheckFn): string[] {
  const wrong = Object.entries(r.correct).filter(([, c]) => c.value !== c.expected);
  return [
    '',
    `Sending through SMTP on ${r.label}: ${fmt(r.messages)} reminder emails through channel-email (nodemailer pool) to smtp-server on loopback (in the bench's process)`,
    `  sweep ${r.sweepSeconds.toFixed(2)} s; drain ${r.drainSeconds.toFixed(2)} s = ${fmt(r.perSecond)} messages/s; longest loop block ${r.blockMs.toFixed(1)} ms; ${r.connections} SMTP connections in all`,
    `  slow server (each DATA answered ${r.slow.delayMs} ms late): ${fmt(r.slow.messages)} messages in ${r.slow.seconds.toFixed(2)} s, longest loop block ${r.slow.blockMs.toFixed(1)} ms`,
    `  outcome: ${Object.entries(r.correct).map(([k, c]) => `${k} ${fmt(c.value)}${c.value === c.expected ? '' : ` (expected ${fmt(c.expected)})`}`).join('; ')}`,
    `  ${check(`smtp ${r.label}: drain messages/s`, fmt(r.perSecond), `≥ ${SMTP_AIMS.perSecond}`, r.perSecond >= SMTP_AIMS.perSecond)}`,
    `  ${check(`smtp ${r.label}: longest loop block ms`, r.blockMs.toFixed(1), `≤ ${SMTP_AIMS.blockMs} ms`, r.blockMs <= SMTP_AIMS.blockMs)}`,
    `  ${check(`smtp ${r.label}: slow server, longest block ms`, r.slow.blockMs.toFixed(1), `≤ ${SMTP_AIMS.blockMs} ms`, r.slow.blockMs <= SMTP_AIMS.blockMs)}`,
    `  ${check(`smtp ${r.label}: each message accepted once`, wrong.length ? 'no' : 'yes', 'counts above as expected', wrong.length === 0)}`,
  ];
}

/** True when every correctness count matched (run.ts exits 1 otherwise). */
export const smtpCorrect = (r: SmtpResult) => Object.values(r.correct).every((c) => c.value === c.expected);

// ---------------------------------------------------------------- entry points

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const spec = process.env.BENCH_SMTP_CHILD;
  if (spec) {
    await child(JSON.parse(spec));
  } else {
    const messages = Number(process.env.BENCH_SMTP ?? 10_000);
    await runStandalone('smtp', async ({ env, label }, log, check) => {
      const result = await measureSmtp(env, messages, label, log);
      return { lines: reportSmtp(result, check), correct: smtpCorrect(result) };
    });
  }
}
