import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { signUp, useEnv } from './support/harness.ts';
import { jobsOf, onlyJob } from './support/jobs-helpers.ts';
import { HandlerNotLoadedError, InvalidEventPayloadError, UnknownEventTypeError, type EventPayloads, type PaylinkEvent } from '../src/core/events.ts';

forEachTarget('events', (target) => {
  // A fresh env per test, with no plugins: only this file's handlers subscribe, so the hooks.run jobs are all ours.
  const env = useEnv(target, { pluginSources: [] }, { each: true });

  /** Payloads of the declared shapes (these tests are about delivery, not about what emits them). */
  const linkCreated = (linkId: string): EventPayloads['link.created'] => ({ merchantId: 'mer_1', linkId, kind: 'smart', type: 'amount', name: 'Test', path: 'test', amount: 1250, currency: 'EUR', productId: null });
  const linkExpired = (linkId: string): EventPayloads['link.expired'] => ({ merchantId: 'mer_1', linkId, customerId: null, expiredAt: '2026-03-02T09:00:00.000Z' });
  const emitCommitted = <T extends 'link.created' | 'link.expired'>(type: T, payload: EventPayloads[T]) =>
    env.rt.db.transaction((trx) => env.rt.events.emit(trx, type, payload));

  /** Moves the clock to the earliest queued job's run_at, so its retry is due. */
  async function untilNextRetry(): Promise<void> {
    const row = await env.rt.db('jobs').where({ state: 'queued' }).orderBy('run_at').first();
    expect(row, 'a job waiting for its retry').to.exist;
    const job = (await env.rt.jobs.get(Number(row.id)))!;
    env.clock.set(job.runAt);
  }

  it('records no event and queues no job when the emitting transaction rolls back', async () => {
    const { rt } = env;
    const seen: string[] = [];
    rt.events.subscribe('link.created', 'test:rollback', (e) => void seen.push(e.id));
    let eventId = '';
    const rolledBack = new Error('roll back');
    const err = await rt.db
      .transaction(async (trx) => {
        eventId = await rt.events.emit(trx, 'link.created', linkCreated('lnk_1'));
        throw rolledBack;
      })
      .catch((e: unknown) => e);
    expect(err).to.equal(rolledBack);
    expect(eventId).to.match(/^evt_/);
    expect(await rt.events.get(eventId)).to.equal(null);
    expect(await rt.db('events').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    expect(await rt.db('jobs').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    expect(await rt.jobs.drain()).to.equal(0);
    expect(seen).to.deep.equal([]);
  });

  it('runs a subscribed handler from the job queue, not inline, with the evt_ id', async () => {
    const { rt } = env;
    const seen: PaylinkEvent<'link.created'>[] = [];
    rt.events.subscribe('link.created', 'test:seen', (e) => void seen.push(e));
    const id = await emitCommitted('link.created', linkCreated('lnk_1'));
    expect(id).to.match(/^evt_[A-Za-z0-9]{22}$/);
    expect(seen, 'ran inline, in the emitter’s transaction').to.deep.equal([]);
    // Queued with the event, in the emitter's transaction, carrying it (the run never reads it back).
    const queued = await onlyJob(env, 'hooks.run');
    expect(queued).to.include({ state: 'queued' });
    expect(queued.payload).to.deep.include({ eventId: id, subscriptionId: 'test:seen' });
    expect(await jobsOf(env, 'events.dispatch')).to.deep.equal([]);

    await rt.jobs.drain();
    expect(seen).to.have.length(1);
    expect(seen[0]).to.include({ id, type: 'link.created' });
    expect(seen[0].payload).to.deep.equal(linkCreated('lnk_1'));
    expect(seen[0].createdAt).to.be.an.instanceOf(Date);
    expect(seen[0]).not.to.have.property('merchantId'); // the internal key never reaches handlers
    expect(await onlyJob(env, 'hooks.run')).to.include({ state: 'done', attempts: 1 });
  });

  it('queues no run for a handler whose wants() says no, asking it inside the emitting transaction', async () => {
    const { rt } = env;
    const seen: string[] = [];
    const asked: string[] = [];
    rt.events.subscribe(
      'link.created',
      'test:picky',
      (e) => void seen.push(e.payload.linkId),
      () => true,
      async (e, q) => {
        // Reads through the emitter's transaction: the event row it is about is visible there.
        const row = await q('events').where({ public_id: e.id }).first('type');
        asked.push(`${(e.payload as { linkId: string }).linkId}:${row?.type}`);
        return (e.payload as { linkId: string }).linkId === 'lnk_wanted';
      },
    );
    await emitCommitted('link.created', linkCreated('lnk_unwanted'));
    await emitCommitted('link.created', linkCreated('lnk_wanted'));
    expect(asked).to.deep.equal(['lnk_unwanted:link.created', 'lnk_wanted:link.created']);
    expect(await jobsOf(env, 'hooks.run')).to.have.length(1);
    await rt.jobs.drain();
    expect(seen).to.deep.equal(['lnk_wanted']);
  });

  it('asks a batch filter ({ many }) once for all the events emitted together, and queues runs only for those it wants', async () => {
    const { rt } = env;
    const seen: string[] = [];
    const calls: string[][] = [];
    rt.events.subscribe('link.created', 'test:batch', (e) => void seen.push(e.payload.linkId), () => true, {
      many: async (events, q) => {
        // In the emitter's transaction, with every event of the emit.
        const stored = await q('events').whereIn('public_id', events.map((e) => e.id)).count({ n: '*' });
        calls.push(events.map((e) => `${(e.payload as { linkId: string }).linkId}:${Number((stored as { n: number | string }[])[0].n)}`));
        return events.map((e) => (e.payload as { linkId: string }).linkId.endsWith('_yes'));
      },
    });
    await rt.db.transaction((trx) => rt.events.emitMany(trx, 'link.created', ['lnk_1_no', 'lnk_2_yes', 'lnk_3_no', 'lnk_4_yes'].map((id) => ({ payload: linkCreated(id), merchantId: null }))));
    expect(calls).to.deep.equal([['lnk_1_no:4', 'lnk_2_yes:4', 'lnk_3_no:4', 'lnk_4_yes:4']]);
    expect(await jobsOf(env, 'hooks.run')).to.have.length(2);
    await rt.jobs.drain();
    expect(seen.sort()).to.deep.equal(['lnk_2_yes', 'lnk_4_yes']);
    // A filter that answers for fewer events than it was given is a bug: the emit fails, nothing is written.
    rt.events.subscribe('link.expired', 'test:short', () => {}, () => true, { many: async () => [true] });
    const err = await rt.db.transaction((trx) => rt.events.emitMany(trx, 'link.expired', [linkExpired('lnk_a'), linkExpired('lnk_b')].map((payload) => ({ payload, merchantId: null })))).catch((e: unknown) => e);
    expect(String(err)).to.include('answered 1 times for 2 events');
    expect(await rt.db('events').where({ type: 'link.expired' })).to.have.length(0);
  });

  it('still runs an events.dispatch job queued before events fanned out on emit (an upgrade)', async () => {
    const { rt } = env;
    const seen: string[] = [];
    rt.events.subscribe('link.created', 'test:old-dispatch', (e) => void seen.push(e.id));
    // An event and its dispatch job as an earlier version wrote them: no runs queued with it.
    const id = 'evt_olddispatch0000000000';
    await rt.db('events').insert({ public_id: id, type: 'link.created', merchant_id: null, payload: JSON.stringify(linkCreated('lnk_old')), created_at: env.clock.now() });
    await rt.jobs.enqueue(rt.db, 'events.dispatch', { eventId: id }, { uniqueKey: `dispatch:${id}` });
    await rt.jobs.drain();
    expect(seen).to.deep.equal([id]);
    expect(await onlyJob(env, 'events.dispatch')).to.include({ state: 'done', attempts: 1 });
    expect(await onlyJob(env, 'hooks.run')).to.include({ state: 'done', attempts: 1 });
  });

  it('retries a handler that throws, handing it the same event id', async () => {
    const { rt } = env;
    const calls: string[] = [];
    rt.events.subscribe('link.expired', 'test:flaky', (e) => {
      calls.push(e.id);
      if (calls.length === 1) throw Object.assign(new Error('webhook endpoint timed out'), { code: 'ETIMEDOUT' });
    });
    const id = await emitCommitted('link.expired', linkExpired('lnk_1'));
    await rt.jobs.drain();
    expect(calls).to.deep.equal([id]);
    expect(await onlyJob(env, 'hooks.run')).to.include({ state: 'queued', attempts: 1 });

    await untilNextRetry();
    await rt.jobs.drain();
    expect(calls).to.deep.equal([id, id]);
    expect(await onlyJob(env, 'hooks.run')).to.include({ state: 'done', attempts: 2 });
  });

  it('keeps two handlers of one event independent: one failing does not re-run the other', async () => {
    const { rt } = env;
    const failing: string[] = [];
    const fine: string[] = [];
    rt.events.subscribe('link.expired', 'test:failing', (e) => {
      failing.push(e.id);
      if (failing.length < 3) throw new Error('not yet');
    });
    rt.events.subscribe('link.expired', 'test:fine', (e) => void fine.push(e.id));
    const id = await emitCommitted('link.expired', linkExpired('lnk_2'));
    await rt.jobs.drain();
    for (let retry = 0; retry < 2; retry++) {
      await untilNextRetry();
      await rt.jobs.drain();
    }
    expect(failing).to.deep.equal([id, id, id]);
    expect(fine).to.deep.equal([id]);
    const runs = await jobsOf(env, 'hooks.run');
    expect(runs.map((j) => [(j.payload as { subscriptionId: string }).subscriptionId, j.state, j.attempts]).sort()).to.deep.equal([
      ['test:failing', 'done', 3],
      ['test:fine', 'done', 1],
    ]);
  });

  it('refuses to subscribe to an unknown event name', () => {
    const subscribe = () => env.rt.events.subscribe('link.exploded' as never, 'test:unknown', () => {});
    expect(subscribe).to.throw(UnknownEventTypeError).with.property('code', 'unknown_event_type');
  });

  it('refuses to emit a payload that does not match its schema (outside production), writing nothing', async () => {
    const wrong = [
      { ...linkCreated('lnk_1'), merchantId: undefined },
      { ...linkCreated('lnk_1'), amount: 12.5 },
      { ...linkCreated('lnk_1'), secret: 'not in the catalogue' },
    ];
    for (const payload of wrong) {
      const err = await env.rt.db.transaction((trx) => env.rt.events.emit(trx, 'link.created', payload as never)).catch((e: unknown) => e);
      expect(err, JSON.stringify(payload)).to.be.an.instanceOf(InvalidEventPayloadError).with.property('code', 'invalid_event_payload');
    }
    expect(await env.rt.db('events').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
  });

  it('refuses to emit an unknown event name, writing nothing', async () => {
    const err = await env.rt.db.transaction((trx) => env.rt.events.emit(trx, 'link.exploded' as never, {} as never)).catch((e: unknown) => e);
    expect(err).to.be.an.instanceOf(UnknownEventTypeError);
    expect(await env.rt.db('events').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
  });

  it('skips the queued run of a handler whose enabled() returns false', async () => {
    const { rt } = env;
    let enabled = true;
    const seen: string[] = [];
    rt.events.subscribe('link.created', 'test:plugin-hook', (e) => void seen.push(e.id), () => enabled);
    await emitCommitted('link.created', linkCreated('lnk_3'));
    enabled = false; // the plugin is disabled after the event, before its hook runs
    await rt.jobs.drain();
    expect(seen).to.deep.equal([]);
    expect(await onlyJob(env, 'hooks.run')).to.include({ state: 'done', attempts: 1 });
  });

  it('retries, rather than drops, a hook run that lands on a process without that handler', async () => {
    const { rt } = env;
    const other = await env.sibling();
    const seen: string[] = [];
    other.events.subscribe('link.created', 'test:only-there', (e) => void seen.push(e.id));
    // The process that has the handler emits (and so fans out)...
    const id = await other.db.transaction((trx) => other.events.emit(trx, 'link.created', linkCreated('lnk_4')));
    // ...but the run itself is claimed by one that does not have it.
    expect(await rt.jobs.drain()).to.equal(1);
    const run = await onlyJob(env, 'hooks.run');
    expect(run).to.include({ state: 'queued', attempts: 1 });
    expect(run.lastError).to.match(new RegExp(`^${HandlerNotLoadedError.name}\\b`));

    await untilNextRetry();
    await other.jobs.drain();
    expect(seen).to.deep.equal([id]);
    expect(await onlyJob(env, 'hooks.run')).to.include({ state: 'done', attempts: 2 });
  });

  it('delivers merchant.created from a real change to a subscribed handler', async () => {
    const { rt } = env;
    const seen: PaylinkEvent<'merchant.created'>[] = [];
    rt.events.subscribe('merchant.created', 'test:welcome', (e) => void seen.push(e));
    const acct = await signUp(env.app);
    await rt.jobs.drain();
    expect(seen).to.have.length(1);
    expect(seen[0].id).to.match(/^evt_/);
    expect(seen[0].payload.handle).to.equal(acct.handle);
  });
});
