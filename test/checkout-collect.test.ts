// What a link's checkout collects (issue 16): `collect` on links (API validation by nested field),
// the pay page's phone, address, custom fields, instructions and terms consent judged on the server,
// and every collected value through to the payment — API, CSV, webhook, dashboard — and the
// customer record.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { build, csrfFrom, type TestEnv } from './support/harness.ts';
import { apiClient, apiMerchant, expectFieldErrors, type ApiCall, type ApiMerchant } from './support/api.ts';
import { startReceiver, type TestReceiver } from './support/webhook-receiver.ts';

const CARD_OK = '4242424242424242';
const COLLECT = {
  phone: 'required',
  address: true,
  instructions: true,
  terms_url: 'https://kiln.example/terms',
  custom_fields: [
    { key: 'company', label: 'Company name', type: 'text', required: false, help: 'For the invoice.' },
    { key: 'guests', label: 'Number of guests', type: 'number', required: true },
    { key: 'size', label: 'Apron size', type: 'dropdown', required: true, options: ['S', 'M', 'L'] },
    { key: 'over18', label: 'I am 18 or older', type: 'checkbox', required: true },
    { key: 'newsletter', label: 'Send me news', type: 'checkbox', required: false },
  ],
};
const GOOD = {
  name: 'Ann Example',
  email: 'ann@example.test',
  phone: '+31 6 12345678',
  address: 'Keizersgracht 1\n1015 CJ Amsterdam',
  instructions: 'Left-handed wheel, please.',
  terms: 'on',
  'fields[company]': 'Kiln & Co',
  'fields[guests]': '3',
  'fields[size]': 'M',
  'fields[over18]': 'on',
};

forEachTarget('what the checkout collects', (target) => {
  let env: TestEnv;
  let a: ApiMerchant;
  let call: ApiCall;
  let hook: TestReceiver;
  const http = () => supertest(env.app);

  before(async () => {
    hook = await startReceiver();
    env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 }, env: { PAYLINK_WEBHOOKS_ALLOW_PRIVATE: '1' } });
    a = await apiMerchant(env, 'Kiln Club');
    call = apiClient(env.app, a.secret);
  });
  after(async () => {
    await env?.close();
    await hook?.close();
  });

  let made = 0;
  const link = async (collect: unknown = COLLECT) => {
    const res = await call('post', '/links', { type: 'amount', name: `Pottery class ${++made}`, amount: 5000, collect });
    expect(res.status, res.text).to.equal(201);
    return res.body as { id: string; path: string; collect: typeof COLLECT };
  };
  const pagePath = (l: { path: string }) => `/${a.handle}/${l.path}`;
  const errorOf = (html: string, id: string) => new RegExp(`id="${id.replace(/[[\]]/g, '\\$&')}-error"[^>]*>([^<]*)<`).exec(html)?.[1] ?? null;
  const count = async (table: string) => Number(((await env.rt.db(table).count({ n: '*' }).first()) as { n: number }).n);

  describe('collect on links (API)', () => {
    it('stores and answers the collect object; defaults when absent; PATCH changes and null clears it', async () => {
      const l = await link();
      expect(l.collect).to.deep.equal({
        ...COLLECT,
        custom_fields: COLLECT.custom_fields.map((f) => ({ help: null, ...f })),
      });
      expect((await call('get', `/links/${l.id}`)).body.collect).to.deep.equal(l.collect);
      const plain = await call('post', '/links', { type: 'amount', name: 'Plain', amount: 100 }).expect(201);
      expect(plain.body.collect).to.deep.equal({ phone: 'off', address: false, instructions: false, terms_url: null, custom_fields: [] });
      const patched = await call('patch', `/links/${plain.body.id}`, { collect: { phone: 'optional' } }).expect(200);
      expect(patched.body.collect).to.include({ phone: 'optional', address: false });
      const cleared = await call('patch', `/links/${plain.body.id}`, { collect: null }).expect(200);
      expect(cleared.body.collect.phone).to.equal('off');
    });

    it('answers 422 naming each bad nested field, writing nothing', async () => {
      const field = (over: Record<string, unknown>) => ({ key: 'k', label: 'K', type: 'text', required: false, ...over });
      const before = await count('links');
      for (const [collect, fields] of [
        ['yes', ['collect']],
        [{ phone: 'maybe' }, ['collect.phone']],
        [{ address: 'yes' }, ['collect.address']],
        [{ instructions: 1 }, ['collect.instructions']],
        [{ terms_url: 'javascript:alert(1)' }, ['collect.terms_url']],
        [{ terms_url: 'terms.html' }, ['collect.terms_url']],
        [{ surprise: true }, ['collect']],
        [{ custom_fields: 'x' }, ['collect.custom_fields']],
        [{ custom_fields: Array.from({ length: 11 }, (_, i) => field({ key: `k${i}` })) }, ['collect.custom_fields']],
        [{ custom_fields: [field({}), field({ key: 'k' })] }, ['collect.custom_fields[1].key']],
        [{ custom_fields: [field({ key: 'Bad Key' })] }, ['collect.custom_fields[0].key']],
        [{ custom_fields: [field({ label: '' })] }, ['collect.custom_fields[0].label']],
        [{ custom_fields: [field({ label: 'x'.repeat(81) })] }, ['collect.custom_fields[0].label']],
        [{ custom_fields: [field({ type: 'date' })] }, ['collect.custom_fields[0].type']],
        [{ custom_fields: [field({ required: 'yes' })] }, ['collect.custom_fields[0].required']],
        [{ custom_fields: [field({ key: 'a' }), field({ key: 'b' }), field({ key: 'c', type: 'dropdown' })] }, ['collect.custom_fields[2].options']],
        [{ custom_fields: [field({ type: 'dropdown', options: [] })] }, ['collect.custom_fields[0].options']],
        [{ custom_fields: [field({ type: 'dropdown', options: ['A', 'a'] })] }, ['collect.custom_fields[0].options']],
        [{ custom_fields: [field({ type: 'dropdown', options: ['A', ''] })] }, ['collect.custom_fields[0].options[1]']],
        [{ custom_fields: [field({ options: ['A'] })] }, ['collect.custom_fields[0].options']],
        [{ custom_fields: [field({ help: 'x'.repeat(201) })] }, ['collect.custom_fields[0].help']],
        [{ custom_fields: [field({ extra: 1 })] }, ['collect.custom_fields[0]']],
      ] as const) {
        const res = await call('post', '/links', { type: 'amount', name: 'Bad collect', amount: 100, collect });
        expectFieldErrors(res, [...fields]);
      }
      expect(await count('links'), 'no link was written').to.equal(before);
      const l = await link();
      expectFieldErrors(await call('patch', `/links/${l.id}`, { collect: { custom_fields: [field({ type: 'dropdown' })] } }), ['collect.custom_fields[0].options']);
      expect((await call('get', `/links/${l.id}`)).body.collect.custom_fields).to.have.length(5);
    });
  });

  describe('the pay page', () => {
    it('shows what the link collects, and nothing more on a link that collects nothing', async () => {
      const l = await link();
      const page = await http().get(pagePath(l)).expect(200);
      for (const name of ['phone', 'address', 'instructions', 'terms', 'fields[company]', 'fields[guests]', 'fields[size]', 'fields[over18]', 'fields[newsletter]']) expect(page.text, name).to.include(`name="${name}"`);
      expect(page.text).to.include('href="https://kiln.example/terms"').and.include('For the invoice.').and.include('<option>M</option>');
      const plain = await link(null);
      expect((await http().get(pagePath(plain)).expect(200)).text).not.to.include('name="phone"');
    });

    it('refuses bad values by their fields (422) and opens no checkout; tampered choices lose', async () => {
      const l = await link();
      const before = await count('checkout_sessions');
      for (const [change, ids] of [
        [{ phone: '' }, ['f-phone']],
        [{ phone: '12345' }, ['f-phone']],
        [{ phone: '+31 6 1234 5678 ext. 9' }, ['f-phone']],
        [{ address: '   ' }, ['f-address']],
        [{ address: 'x'.repeat(501) }, ['f-address']],
        [{ instructions: 'x'.repeat(1001) }, ['f-instructions']],
        [{ terms: '' }, ['f-terms']],
        [{ 'fields[guests]': '' }, ['f-field-guests']],
        [{ 'fields[guests]': 'three' }, ['f-field-guests']],
        [{ 'fields[guests]': '1e9' }, ['f-field-guests']],
        [{ 'fields[size]': 'XXL' }, ['f-field-size']],
        [{ 'fields[size]': '' }, ['f-field-size']],
        [{ 'fields[over18]': '' }, ['f-field-over18']],
        [{ 'fields[company]': 'a\u0007b' }, ['f-field-company']],
        [{ 'fields[company]': 'x'.repeat(501) }, ['f-field-company']],
      ] as const) {
        const res = await http().post(pagePath(l)).type('form').send({ ...GOOD, ...change });
        expect(res.status, JSON.stringify(change)).to.equal(422);
        for (const id of ids) {
          expect(errorOf(res.text, id), `${id} for ${JSON.stringify(change)}`).to.not.equal('').and.not.equal(null);
          expect(res.text).to.match(new RegExp(`id="${id.replace(/[[\]]/g, '\\$&')}"[^>]* aria-invalid="true"`));
        }
        expect(errorOf(res.text, 'f-name'), 'the other fields are fine').to.equal('');
      }
      expect(await count('checkout_sessions')).to.equal(before);
      // What was typed comes back (escaped).
      const again = await http().post(pagePath(l)).type('form').send({ ...GOOD, 'fields[company]': '<b>Kiln</b>', terms: '' });
      expect(again.text).to.include('value="&lt;b&gt;Kiln&lt;/b&gt;"').and.include('Left-handed wheel');
    });

    it('carries every collected value to the payment (API, CSV, webhook, dashboard) and the customer record', async () => {
      const ep = await call('post', '/webhook_endpoints', { url: `${hook.url}/hooks`, events: ['payment.succeeded'] });
      expect(ep.status, ep.text).to.equal(201);
      hook.received.length = 0;
      const l = await link();
      const res = await http().post(pagePath(l)).type('form').send({ ...GOOD, 'fields[unknown]': 'ignored' });
      expect(res.status, res.text.slice(0, 500)).to.equal(303);
      const done = await http().post(new URL(res.headers.location).pathname).type('form').send({ card_number: CARD_OK });
      expect(done.status).to.equal(303);

      const p = (await call('get', `/payments?link_id=${l.id}`).expect(200)).body.data[0];
      expect(p.status).to.equal('paid');
      expect(p.fields).to.deep.equal({ company: 'Kiln & Co', guests: 3, size: 'M', over18: true, newsletter: false });
      expect(p).to.include({ address: GOOD.address, instructions: GOOD.instructions });
      expect(p.terms_accepted_at).to.equal(env.clock.now().toISOString());
      expect(p.customer).to.include({ name: 'Ann Example', email: 'ann@example.test', phone: '+31612345678' });
      const customer = (await call('get', `/customers/${p.customer.id}`).expect(200)).body;
      expect(customer).to.include({ phone: '+31612345678', address: GOOD.address });

      await env.rt.jobs.drain();
      const delivered = hook.received.map((r) => JSON.parse(r.body)).find((b) => b.type === 'payment.succeeded' && b.data.id === p.id);
      expect(delivered, 'the webhook was delivered').to.exist;
      expect(delivered.data.fields).to.deep.equal(p.fields);
      expect(delivered.data).to.include({ address: GOOD.address, instructions: GOOD.instructions, terms_accepted_at: p.terms_accepted_at });
      await call('delete', `/webhook_endpoints/${ep.body.id}`).expect(200);

      const agent = supertest.agent(env.app);
      const login = await agent.get('/login').expect(200);
      await agent.post('/login').type('form').send({ _csrf: csrfFrom(login.text), email: a.merchant.email, password: 'correct horse battery' }).expect(303);
      const csv = await agent.get('/app/payments.csv').expect(200);
      const text = csv.text;
      expect(text.split(/\r?\n/)[0]).to.include('customer_phone,address,instructions,terms_accepted_at,fields');
      expect(text).to.include('+31612345678').and.include('"Keizersgracht 1\n1015 CJ Amsterdam"').and.include('Left-handed wheel, please.');
      expect(text, 'the fields column: JSON, quoted the CSV way').to.include(`"${JSON.stringify(p.fields).replace(/"/g, '""')}"`);
      const detail = await agent.get(`/app/payments/${p.id}`).expect(200);
      for (const s of ['Company name', 'Kiln &amp; Co', 'Number of guests', 'Apron size', 'I am 18 or older', 'Special instructions', 'Left-handed wheel', 'Accepted']) expect(detail.text, s).to.include(s);
    });

    it('fills in what was collected when the customer cancels on the card page and goes back', async () => {
      const l = await link();
      const res = await http().post(pagePath(l)).type('form').send(GOOD).expect(303);
      const sessionId = new URL(res.headers.location).pathname.split('/').pop()!;
      const back = await http().get(`${pagePath(l)}?back=${sessionId}`).expect(200);
      expect(back.text).to.include('value="+31612345678"').and.include('Keizersgracht 1').and.include('value="Kiln &amp; Co"').and.include('value="3"').and.include('<option selected>M</option>');
      expect(back.text).to.match(/id="f-terms"[^>]* checked/).and.match(/id="f-field-over18"[^>]* checked/);
    });

    it('takes an optional phone left empty, and ignores collected fields a link does not ask for', async () => {
      const l = await link({ phone: 'optional' });
      const res = await http().post(pagePath(l)).type('form').send({ name: 'Bo', email: 'bo@example.test', phone: '' });
      expect(res.status, res.text.slice(0, 300)).to.equal(303);
      const plain = await link(null);
      const res2 = await http().post(pagePath(plain)).type('form').send({ name: 'Cy', email: 'cy@example.test', phone: 'not a phone', 'fields[x]': 'y', address: 'z' });
      expect(res2.status).to.equal(303);
      const session = await env.rt.services.checkout.getSession(new URL(res2.headers.location).pathname.split('/').pop()!);
      const row = await env.rt.db('checkout_sessions').where({ public_id: session!.id }).first();
      expect([row.customer_phone, row.address, row.fields]).to.deep.equal([null, null, null]);
    });
  });

  describe('the link form (dashboard)', () => {
    async function agentFor() {
      const agent = supertest.agent(env.app);
      const login = await agent.get('/login').expect(200);
      await agent.post('/login').type('form').send({ _csrf: csrfFrom(login.text), email: a.merchant.email, password: 'correct horse battery' }).expect(303);
      const form = await agent.get('/app/links/new?type=amount').expect(200);
      return { agent, csrf: csrfFrom(form.text), form: form.text };
    }
    const base = (csrf: string) => ({ _csrf: csrf, type: 'amount', currency: 'EUR', amount: '25.00', limit: 'unlimited', redirect_target: 'same', active: 'on', collect_form: '1' });

    it('sets what the checkout collects in its Checkout section, with errors by row (422), and edits it', async () => {
      const { agent, csrf, form } = await agentFor();
      for (const name of ['collect_phone', 'collect_address', 'collect_instructions', 'collect_terms_url', 'cf_label_0', 'cf_type_0', 'cf_key_0', 'cf_options_0', 'cf_help_0', 'cf_required_0', 'cf_label_1']) expect(form, name).to.include(`name="${name}"`);
      const bad = await agent.post('/app/links').type('form').send({
        ...base(csrf), name: 'Bad form', collect_terms_url: 'ftp://x', cf_label_0: 'Company', cf_type_0: 'text',
        // A blank row between two filled ones is dropped: the dropdown becomes row 1.
        cf_label_2: 'Size', cf_type_2: 'dropdown', cf_options_2: '',
      });
      expect(bad.status).to.equal(422);
      expect(errorOf(bad.text, 'f-collect_terms_url')).to.not.equal('');
      expect(errorOf(bad.text, 'f-cf_options_1'), 'the error sits by the row shown').to.match(/at least one option/);
      expect(bad.text).to.include('value="Size"');
      expect(await env.rt.db('links').where({ name: 'Bad form' }).first()).to.equal(undefined);

      const ok = await agent.post('/app/links').type('form').send({
        ...base(csrf), name: 'Workshop', collect_phone: 'required', collect_address: 'on', collect_terms_url: 'https://kiln.example/terms',
        cf_label_0: 'Company name', cf_type_0: 'text', cf_help_0: 'For the invoice.',
        cf_label_1: 'Apron size', cf_type_1: 'dropdown', cf_options_1: 'S\r\nM\r\nL', cf_required_1: 'on',
      });
      expect(ok.status, errorOf(ok.text, 'f-name') ?? '').to.equal(303);
      const row = await env.rt.db('links').where({ name: 'Workshop' }).first();
      const id = row.public_id as string;
      const made = (await call('get', `/links/${id}`)).body.collect;
      expect(made).to.deep.equal({
        phone: 'required', address: true, instructions: false, terms_url: 'https://kiln.example/terms',
        custom_fields: [
          { key: 'company_name', label: 'Company name', type: 'text', required: false, help: 'For the invoice.' },
          { key: 'apron_size', label: 'Apron size', type: 'dropdown', required: true, options: ['S', 'M', 'L'], help: null },
        ],
      });
      const edit = await agent.get(`/app/links/${id}/edit`).expect(200);
      expect(edit.text).to.include('value="Company name"').and.include('value="company_name"').and.include('name="cf_label_3"').and.not.include('name="cf_label_4"');
      expect(edit.text).to.match(/<option value="required" selected>/);
    });

    it('shows more custom-field rows on "Add more fields" without saving, on a new link and when editing; Enter still saves', async () => {
      const { agent, csrf, form } = await agentFor();
      // The form's first submit button (the one Enter presses) saves; "Add more fields" comes later.
      const buttons = [...form.slice(form.indexOf('id="link-form"')).matchAll(/<button type="submit"([^>]*)>([^<]*)</g)].map((m) => [m[1], m[2]]);
      expect(buttons[0][1]).to.equal('Create link');
      expect(buttons[0][0]).to.not.include('name=');
      expect(form).to.include('formaction="/app/links#f-custom-fields"');
      const rows = (html: string) => [...html.matchAll(/name="cf_label_(\d+)"/g)].length;
      expect(rows(form)).to.equal(2);
      const filled = { cf_label_0: 'Company', cf_type_0: 'text', cf_label_1: 'Size', cf_type_1: 'dropdown', cf_options_1: 'S\r\nM' };
      const more = await agent.post('/app/links').type('form').send({ ...base(csrf), name: 'More rows', ...filled, refresh: 'fields' }).expect(200);
      expect(rows(more.text)).to.equal(4);
      expect(more.text).to.include('value="Company"').and.include('value="Size"').and.include('value="More rows"');
      // Not saved, and no error shown for the dropdown or anything else.
      expect(await env.rt.db('links').where({ name: 'More rows' }).first()).to.equal(undefined);
      expect(more.text).to.not.include('Nothing was saved');
      // Ten filled rows: no more rows, and no button.
      const ten = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [[`cf_label_${i}`, `Field ${i}`], [`cf_type_${i}`, 'text']]).flat());
      const full = await agent.post('/app/links').type('form').send({ ...base(csrf), name: 'Full', ...ten, refresh: 'fields' }).expect(200);
      expect(rows(full.text)).to.equal(10);
      expect(full.text).to.not.include('Add more fields');
      // Editing: the same, posted to the link's own address, and the link is unchanged.
      const ok = await agent.post('/app/links').type('form').send({ ...base(csrf), name: 'Edited rows', ...filled }).expect(303);
      const id = ok.headers.location.split('/').pop()!;
      const edit = await agent.get(`/app/links/${id}/edit`).expect(200);
      expect(edit.text).to.include(`formaction="/app/links/${id}#f-custom-fields"`);
      const third = { ...filled, cf_label_2: 'Colour', cf_type_2: 'text' };
      const moreEdit = await agent.post(`/app/links/${id}`).type('form').send({ ...base(csrfFrom(edit.text)), name: 'Edited rows', ...third, refresh: 'fields' }).expect(200);
      expect(rows(moreEdit.text)).to.equal(5);
      expect(moreEdit.text).to.include('value="Colour"');
      expect((await call('get', `/links/${id}`)).body.collect.custom_fields.map((f: any) => f.label)).to.deep.equal(['Company', 'Size']);
    });
  });
});
