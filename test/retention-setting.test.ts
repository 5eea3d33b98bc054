import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, fieldError, signUp, type Account, type TestEnv } from './support/harness.ts';
import type { Link } from '../src/features/links/service.ts';

const CHROME_MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
const DAY_MS = 86_400_000;

forEachTarget('settings: view retention', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
  });
  after(() => env?.close());

  const merchantOf = async (acct: Account) => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const form = async (acct: Account) => {
    const m = await merchantOf(acct);
    return { _csrf: acct.csrf, name: m.name, handle: m.handle, currency: m.currency, timezone: m.timezone, brand_color: m.brandColor, view_retention_months: String(m.viewRetentionMonths) };
  };
  const selected = (html: string) => /<select id="f-view_retention_months"[\s\S]*?<option value="([^"]*)" selected>/.exec(html)?.[1];

  describe('the setting', () => {
    it('keeps view details for 13 months by default', async () => {
      const acct = await signUp(env.app);
      expect((await merchantOf(acct)).viewRetentionMonths).to.equal(13);
      const page = await acct.agent.get('/app/settings').expect(200);
      expect(selected(page.text)).to.equal('13');
      expect(page.text).to.match(/aria-describedby="f-view_retention_months-error f-view_retention_months-hint"/);
    });

    it('saves 6 months and records only that change in merchant.updated', async () => {
      const acct = await signUp(env.app);
      const merchant = await merchantOf(acct);
      const res = await acct.agent.post('/app/settings').type('form').send({ ...(await form(acct)), view_retention_months: '6' }).expect(303);
      expect(res.headers.location).to.equal('/app/settings');
      expect((await merchantOf(acct)).viewRetentionMonths).to.equal(6);
      const [event] = await env.rt.events.listForMerchant(merchant.key);
      expect(event.type).to.equal('merchant.updated');
      expect((event.payload as { changed: string[] }).changed).to.deep.equal(['view_retention_months']);
      expect(selected((await acct.agent.get('/app/settings').expect(200)).text)).to.equal('6');
    });

    it('answers an htmx save with the form fragment showing the new value', async () => {
      const acct = await signUp(env.app);
      const res = await acct.agent.post('/app/settings').set('HX-Request', 'true').set('X-CSRF-Token', acct.csrf).type('form').send({ ...(await form(acct)), view_retention_months: '24' }).expect(200);
      expect(res.text).not.to.include('<html');
      expect(selected(res.text)).to.equal('24');
      expect((await merchantOf(acct)).viewRetentionMonths).to.equal(24);
    });

    it('keeps the retention when a form without the field is posted (a page rendered before the setting existed)', async () => {
      const acct = await signUp(env.app);
      await acct.agent.post('/app/settings').type('form').send({ ...(await form(acct)), view_retention_months: '3' }).expect(303);
      const { view_retention_months: _, ...older } = await form(acct);
      await acct.agent.post('/app/settings').type('form').send({ ...older, name: 'Renamed Shop' }).expect(303);
      expect(await merchantOf(acct)).to.include({ name: 'Renamed Shop', viewRetentionMonths: 3 });
    });

    const bad: [string, unknown][] = [
      ['0 months', '0'],
      ['121 months', '121'],
      ['a word', 'abc'],
      ['an empty choice', ''],
      ['a fraction', '6.5'],
      ['a negative number', '-6'],
      ['a repeated field', ['6', '12']],
    ];
    for (const [label, value] of bad) {
      it(`refuses ${label} with 422 and the message by the field, saving nothing`, async () => {
        const acct = await signUp(env.app);
        const before = await merchantOf(acct);
        const res = await acct.agent.post('/app/settings').type('form').send({ ...(await form(acct)), name: 'Changed Name', view_retention_months: value }).expect(422);
        expect(fieldError(res.text, 'view_retention_months')).not.to.equal('');
        expect(res.text).to.match(/id="f-view_retention_months"[^>]*aria-invalid="true"/);
        expect(await merchantOf(acct)).to.deep.equal(before);
        expect((await env.rt.events.listForMerchant(before.key)).map((e) => e.type)).not.to.include('merchant.updated');
      });
    }
  });

  describe('the retention job', () => {
    /** Views of a link's pay page at `at` (the recorder stamps them with the clock). */
    const viewAt = async (link: Link, handle: string, at: Date, n: number) => {
      env.clock.set(at);
      for (let i = 0; i < n; i++) await supertest(env.app).get(`/${handle}/${link.path}`).set('User-Agent', CHROME_MAC).expect(200);
      await env.rt.views!.flush();
    };
    const stats = async (link: Link) => {
      const [{ views }] = await env.rt.db('link_stats_hourly').where('link_id', link.key).sum({ views: 'views' });
      const [{ rows }] = await env.rt.db('link_views').where('link_id', link.key).count({ rows: '*' });
      return { link: await env.rt.services.links.get(await env.rt.services.merchants.getByKey(link.merchantKey).then((m) => m!), link.id), rollupViews: Number(views), rows: Number(rows) };
    };

    it('deletes raw views older than each merchant’s setting and keeps counters and rollups', async () => {
      const now = new Date('2026-03-02T09:00:00Z');
      const six = await signUp(env.app);
      await six.agent.post('/app/settings').type('form').send({ ...(await form(six)), view_retention_months: '6' }).expect(303);
      const thirteen = await signUp(env.app); // the default
      const sixLink = await env.rt.services.links.create(await merchantOf(six), { type: 'amount', name: 'Kept six months', amount: 500 });
      const thirteenLink = await env.rt.services.links.create(await merchantOf(thirteen), { type: 'amount', name: 'Kept thirteen months', amount: 500 });

      for (const [acct, link] of [[six, sixLink], [thirteen, thirteenLink]] as const) {
        await viewAt(link, acct.handle, new Date(now.getTime() - 240 * DAY_MS), 3); // ~8 months ago
        await viewAt(link, acct.handle, new Date(now.getTime() - 170 * DAY_MS), 2); // under 6 months ago
        await viewAt(link, acct.handle, new Date(now.getTime() - 1 * DAY_MS), 1);
      }
      env.clock.set(now);
      const before = await stats(sixLink);
      expect(before).to.deep.include({ rows: 6, rollupViews: 6 });
      expect(before.link.views).to.equal(6);

      await env.rt.jobs.enqueue(env.rt.db, 'analytics.prune_views', {});
      await env.rt.jobs.drain();

      const after = await stats(sixLink);
      expect(after).to.deep.include({ rows: 3, rollupViews: 6 });
      expect(after.link).to.include({ views: 6, viewsPruned: 3 });
      expect(env.rt.services.analytics.storedViews(after.link)).to.equal(3);
      const page = await env.rt.services.analytics.viewsPage(after.link, 1);
      expect(page.total).to.equal(3);
      expect(page.items.every((v) => v.viewedAt.getTime() >= now.getTime() - 170 * DAY_MS)).to.equal(true);

      const kept = await stats(thirteenLink);
      expect(kept).to.deep.include({ rows: 6, rollupViews: 6 });
      expect(kept.link).to.include({ views: 6, viewsPruned: 0 });

      // Run again: nothing more to delete.
      expect(await env.rt.services.analytics.pruneViews()).to.equal(0);
    });

    it('follows a shortened setting at the next run', async () => {
      const now = new Date('2026-03-02T09:00:00Z');
      const acct = await signUp(env.app);
      const link = await env.rt.services.links.create(await merchantOf(acct), { type: 'amount', name: 'Shortened', amount: 500 });
      await viewAt(link, acct.handle, new Date(now.getTime() - 45 * DAY_MS), 2);
      await viewAt(link, acct.handle, new Date(now.getTime() - 2 * DAY_MS), 1);
      env.clock.set(now);
      await env.rt.services.analytics.pruneViews();
      expect((await stats(link)).rows).to.equal(3);

      await acct.agent.post('/app/settings').type('form').send({ ...(await form(acct)), view_retention_months: '1' }).expect(303);
      await env.rt.services.analytics.pruneViews();
      const after = await stats(link);
      expect(after).to.deep.include({ rows: 1, rollupViews: 3 });
      expect(after.link).to.include({ views: 3, viewsPruned: 2 });
    });
  });
});
