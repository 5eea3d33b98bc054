import { expect } from 'chai';
import { performance } from 'node:perf_hooks';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { answerFirst, asBackground, isBackground, pace, unansweredRequests, yieldToForeground } from '../src/core/pace.ts';
import { createDb } from '../src/core/db.ts';

/** Synchronous work of at least `ms` (what a run of SQLite queries is to the event loop). */
function work(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/**
 * Runs `lanes` concurrent loops of `units` synchronous units each, yielding with `between` after each
 * unit, and answers the most units that ran in one event-loop turn. A 1 ms interval timer counts the
 * turns: every turn holds at least one 2 ms unit, so the timer is due (and fires once) in each.
 */
async function unitsPerTurn(between: () => Promise<void>, lanes = 8, units = 6): Promise<number> {
  let turn = 0;
  const timer = setInterval(() => turn++, 1);
  const perTurn = new Map<number, number>();
  await new Promise((r) => setTimeout(r, 5));
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      for (let i = 0; i < units; i++) {
        await between();
        work(2);
        perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1);
      }
    }),
  );
  clearInterval(timer);
  return Math.max(...perTurn.values());
}

describe('pace(): one time slice per event-loop turn, shared by every caller', () => {
  it('without it, lanes that yield with setImmediate all run in the same turn (the negative control)', async () => {
    expect(await unitsPerTurn(() => new Promise<void>((r) => setImmediate(r)))).to.be.at.least(8);
  });

  it('with it, a turn runs one unit past its slice, however many lanes there are', async () => {
    // A unit (2 ms) outlasts the slice (1 ms): each turn runs the unit that started in time, the
    // rest wait for later turns.
    expect(await unitsPerTurn(() => pace(1))).to.be.at.most(2);
  });

  it('returns at once while the turn has time left (no trip through the event loop)', async () => {
    await pace(0); // waits for a new turn, whose slice starts now
    let turnEnded = false;
    setImmediate(() => (turnEnded = true));
    for (let i = 0; i < 100; i++) await pace(1_000);
    expect(turnEnded).to.equal(false);
    await pace(0); // a used-up slice: waits for a later turn
    expect(turnEnded).to.equal(true);
  });
});

describe('yieldToForeground(): background work waits while requests are unanswered', () => {
  /** A server whose handler answers only when told; `arrived` resolves once a request is in the handler. */
  async function heldServer() {
    let release!: () => void;
    let arrived!: () => void;
    const inHandler = new Promise<void>((r) => (arrived = r));
    const server = http.createServer((_req, res) => {
      answerFirst(res);
      arrived();
      release = () => res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const response = fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`).then((r) => r.text());
    await inHandler;
    return { release: () => release(), response, close: () => new Promise((r) => server.close(r)) };
  }

  it('returns at once when no request is unanswered', async () => {
    expect(unansweredRequests()).to.equal(0);
    let turnEnded = false;
    setImmediate(() => (turnEnded = true));
    await yieldToForeground(10_000);
    expect(turnEnded).to.equal(false);
  });

  it('holds background work until the request being handled is answered, then lets it go', async () => {
    const held = await heldServer();
    try {
      expect(unansweredRequests()).to.equal(1);
      let ran = false;
      const background = yieldToForeground(60_000).then(() => (ran = true));
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      expect(ran, 'background ran while the request was unanswered').to.equal(false);
      held.release();
      await background;
      expect(await held.response).to.equal('ok');
      expect(unansweredRequests()).to.equal(0);
    } finally {
      await held.close();
    }
  });

  it('makes background work wait before each query it starts while a request is unanswered; the request\'s own queries go at once', async () => {
    const db = createDb({ client: 'sqlite', filename: ':memory:' } as never);
    const held = await heldServer();
    try {
      await db.raw('select 1');
      let backgroundRan = false;
      let foregroundRan = false;
      const job = asBackground(async () => {
        expect(isBackground()).to.equal(true);
        await new Promise((r) => setImmediate(r)); // what it started carries the mark
        expect(isBackground()).to.equal(true);
        await db.raw('select 1');
        backgroundRan = true;
      }, 60_000);
      const request = db.raw('select 1').then(() => (foregroundRan = true));
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      expect(isBackground(), 'outside asBackground').to.equal(false);
      expect(foregroundRan, 'a query outside background work').to.equal(true);
      expect(backgroundRan, 'a background query while the request was unanswered').to.equal(false);
      held.release();
      await job;
      await request;
      expect(backgroundRan).to.equal(true);
    } finally {
      await held.response;
      await held.close();
      await db.destroy();
    }
  });

  it('never holds background work longer than its limit, then lets it run without waiting for as long again', async () => {
    const held = await heldServer();
    try {
      const t0 = performance.now();
      await yieldToForeground(5);
      expect(performance.now() - t0).to.be.at.least(4);
      // Within the next 5 ms background work may run at once, though the request is still unanswered.
      let turnEnded = false;
      setImmediate(() => (turnEnded = true));
      await yieldToForeground(5);
      expect(turnEnded).to.equal(false);
      expect(unansweredRequests()).to.equal(1);
    } finally {
      held.release();
      await held.response;
      await held.close();
    }
  });
});
