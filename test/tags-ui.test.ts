import { expect } from 'chai';
import { forEachTarget } from './support/targets.ts';
import { build, signUp, type Account, type TestEnv, fieldError } from './support/harness.ts';
import type { Merchant } from '../src/features/merchants/repository.ts';

forEachTarget('dashboard: tags', (target) => {
  let env: TestEnv;
  before(async () => {
    env = await build(target);
  });
  after(() => env?.close());

  const merchantOf = async (acct: Account): Promise<Merchant> => (await env.rt.services.merchants.getByHandle(acct.handle))!;
  const tagsOf = async (acct: Account) => env.rt.services.tags.list((await merchantOf(acct)).key, 'link');

  it('lists link tags with their colour; customer tags are not here', async () => {
    const acct = await signUp(env.app);
    const key = (await merchantOf(acct)).key;
    const empty = await acct.agent.get('/app/tags').expect(200);
    expect(empty.text).to.include('No tags yet');
    await env.rt.services.tags.create(key, { name: 'Summer', color: '#f59e0b', kind: 'link' });
    await env.rt.services.tags.create(key, { name: 'Loyal', color: '#10b981', kind: 'customer' });
    const res = await acct.agent.get('/app/tags').expect(200);
    expect(res.text).to.include('value="Summer"');
    expect(res.text).to.include('type="color" value="#f59e0b"');
    expect(res.text).not.to.include('Loyal');
  });

  it('creates a tag with a colour; a duplicate or empty name is refused by the field', async () => {
    const acct = await signUp(env.app);
    await acct.agent.post('/app/tags').type('form').send({ _csrf: acct.csrf, name: 'Events', color: '#3B82F6' }).expect(303);
    expect((await tagsOf(acct)).map((t) => [t.name, t.color])).to.deep.equal([['Events', '#3b82f6']]);
    const dup = await acct.agent.post('/app/tags').type('form').send({ _csrf: acct.csrf, name: 'Events', color: '#000000' }).expect(422);
    expect(fieldError(dup.text, 'new-name')).not.to.equal('');
    const empty = await acct.agent.post('/app/tags').type('form').send({ _csrf: acct.csrf, name: ' ', color: '#000000' }).expect(422);
    expect(fieldError(empty.text, 'new-name')).not.to.equal('');
    const colour = await acct.agent.post('/app/tags').type('form').send({ _csrf: acct.csrf, name: 'Bad', color: 'red;}' }).expect(422);
    expect(fieldError(colour.text, 'new-color')).not.to.equal('');
    expect(colour.text).to.include('value="Bad"');
    expect(await tagsOf(acct)).to.have.length(1);
  });

  it('renames and recolours a tag; links keep it under its new name', async () => {
    const acct = await signUp(env.app);
    const merchant = await merchantOf(acct);
    const tag = await env.rt.services.tags.create(merchant.key, { name: 'Sumer', color: '#f59e0b', kind: 'link' });
    const link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Tagged', amount: 100, tags: ['Sumer'] });
    await acct.agent.post(`/app/tags/${tag.id}`).type('form').send({ _csrf: acct.csrf, name: 'Summer', color: '#ef4444' }).expect(303);
    expect((await tagsOf(acct)).map((t) => [t.name, t.color])).to.deep.equal([['Summer', '#ef4444']]);
    expect((await env.rt.services.links.get(merchant, link.id)).tags.map((t) => t.name)).to.deep.equal(['Summer']);
    const page = await acct.agent.get('/app/tags').expect(200);
    expect(page.text).to.include('renamed to “Summer”');
    const list = await acct.agent.get('/app/links').expect(200);
    expect(list.text).to.include('fill="#ef4444"');
  });

  it('refuses a rename to a taken or bad name by that tag’s field, changing nothing', async () => {
    const acct = await signUp(env.app);
    const key = (await merchantOf(acct)).key;
    const a = await env.rt.services.tags.create(key, { name: 'Alpha', kind: 'link' });
    await env.rt.services.tags.create(key, { name: 'Beta', kind: 'link' });
    const taken = await acct.agent.post(`/app/tags/${a.id}`).type('form').send({ _csrf: acct.csrf, name: 'Beta', color: a.color }).expect(422);
    expect(fieldError(taken.text, `name-${a.id}`)).not.to.equal('');
    const bad = await acct.agent.post(`/app/tags/${a.id}`).type('form').send({ _csrf: acct.csrf, name: 'Alpha', color: 'blue' }).expect(422);
    expect(fieldError(bad.text, `color-${a.id}`)).not.to.equal('');
    const long = await acct.agent.post(`/app/tags/${a.id}`).type('form').send({ _csrf: acct.csrf, name: 'x'.repeat(61), color: a.color }).expect(422);
    expect(fieldError(long.text, `name-${a.id}`)).not.to.equal('');
    expect((await tagsOf(acct)).map((t) => t.name)).to.deep.equal(['Alpha', 'Beta']);
  });

  it('deletes a tag after a confirmation page; its links lose only the tag', async () => {
    const acct = await signUp(env.app);
    const merchant = await merchantOf(acct);
    const tag = await env.rt.services.tags.create(merchant.key, { name: 'Old', kind: 'link' });
    const link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Keeps going', amount: 100, tags: ['Old', 'Other'] });
    const confirm = await acct.agent.get(`/app/tags/${tag.id}/delete`).expect(200);
    expect(confirm.text).to.include(`action="/app/tags/${tag.id}/delete"`);
    await acct.agent.post(`/app/tags/${tag.id}/delete`).type('form').send({ _csrf: acct.csrf }).expect(303);
    expect((await tagsOf(acct)).map((t) => t.name)).to.deep.equal(['Other']);
    const after = await env.rt.services.links.get(merchant, link.id);
    expect(after.tags.map((t) => t.name)).to.deep.equal(['Other']);
    expect(after.name).to.equal('Keeps going');
  });

  it('answers 404 for another merchant’s tag, and for customer tags', async () => {
    const owner = await signUp(env.app);
    const key = (await merchantOf(owner)).key;
    const tag = await env.rt.services.tags.create(key, { name: 'Mine', kind: 'link' });
    const customerTag = await env.rt.services.tags.create(key, { name: 'Customers only', kind: 'customer' });
    const intruder = await signUp(env.app);
    await intruder.agent.get(`/app/tags/${tag.id}/delete`).expect(404);
    for (const path of ['', '/delete']) await intruder.agent.post(`/app/tags/${tag.id}${path}`).type('form').send({ _csrf: intruder.csrf, name: 'Stolen', color: '#000000' }).expect(404);
    await owner.agent.get(`/app/tags/${customerTag.id}/delete`).expect(404);
    await owner.agent.post(`/app/tags/${customerTag.id}`).type('form').send({ _csrf: owner.csrf, name: 'Renamed', color: '#000000' }).expect(404);
    expect((await env.rt.services.tags.list(key)).map((t) => t.name).sort()).to.deep.equal(['Customers only', 'Mine']);
  });
});
