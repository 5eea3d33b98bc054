/** Helpers for the JSON API suites: a merchant with a key, an authenticated client, problem checks. */
import { expect } from 'chai';
import supertest from 'supertest';
import type { BuildOptions, TestEnv } from './harness.ts';
import { build, uniqueHandle } from './harness.ts';
import type { Target } from './targets.ts';
import type { Merchant } from '../../src/features/merchants/repository.ts';

export const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Asserts an RFC 9457 problem+json body with our fields and returns it. */
export function expectProblem(res: supertest.Response, status: number, code: string) {
  expect(res.status, res.text).to.equal(status);
  expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
  const body = JSON.parse(res.text);
  expect(body).to.include.all.keys('type', 'title', 'status', 'detail', 'code', 'errors');
  expect(body.status).to.equal(status);
  expect(body.code, res.text).to.equal(code);
  expect(body.errors).to.be.an('array');
  return body as { code: string; errors: { field: string; code: string; message: string }[] };
}

/** A 422 naming exactly these fields (in any order). */
export function expectFieldErrors(res: supertest.Response, fields: string[], code = 'validation_failed') {
  const body = expectProblem(res, 422, code);
  expect([...new Set(body.errors.map((e) => e.field))].sort(), res.text).to.deep.equal([...fields].sort());
  return body;
}

export interface ApiMerchant {
  merchant: Merchant;
  secret: string;
  handle: string;
}

export async function apiMerchant(env: TestEnv, name = 'API Shop', opts: { currency?: string } = {}): Promise<ApiMerchant> {
  const handle = uniqueHandle('api');
  const { merchant } = await env.rt.services.merchants.signUp(
    { name, handle, email: `${handle}@example.test`, password: 'correct horse battery' },
    { currency: opts.currency },
  );
  const { secret } = await env.rt.services.apiKeys.create(merchant, { name: 'test' });
  return { merchant, secret, handle };
}

type Method = 'get' | 'post' | 'patch' | 'delete';

export type ApiCall = ReturnType<typeof apiClient>;

/**
 * An app with two API merchants and a client for each (`a` is the one under test, `b` the stranger
 * whose ids must be 404s), with a rate limit high enough for whole suites.
 */
export async function twoApiMerchants(target: Target, names: [string, string], opts: BuildOptions = {}): Promise<{ env: TestEnv; a: ApiMerchant; b: ApiMerchant; call: ApiCall; callB: ApiCall }> {
  const env = await build(target, { apiLimit: { points: 100_000, durationSec: 60 }, ...opts });
  const a = await apiMerchant(env, names[0]);
  const b = await apiMerchant(env, names[1]);
  return { env, a, b, call: apiClient(env.app, a.secret), callB: apiClient(env.app, b.secret) };
}

/** A client that sends the key (and JSON) on every request: `call('post', '/links', body)`. */
export function apiClient(target: Parameters<typeof supertest>[0], secret: string) {
  return (method: Method, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    let req = supertest(target)[method](`/api/v1${path}`).set('Authorization', `Bearer ${secret}`);
    for (const [k, v] of Object.entries(headers)) req = req.set(k, v);
    return body === undefined ? req : req.send(body as object);
  };
}

/** Every page of a list, following starting_after; fails on a repeated id. */
export async function walkPages(call: ReturnType<typeof apiClient>, path: string, limit: number): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const res = await call('get', `${path}${sep}limit=${limit}${after ? `&starting_after=${after}` : ''}`).expect(200);
    expect(res.body).to.have.all.keys('data', 'has_more');
    pages += 1;
    const pageIds = (res.body.data as { id: string }[]).map((d) => d.id);
    expect(pageIds.length).to.be.at.most(limit);
    for (const id of pageIds) {
      expect(ids, `id ${id} repeated`).not.to.include(id);
      ids.push(id);
    }
    if (!res.body.has_more) return { ids, pages };
    expect(pageIds.length, 'a page with has_more is full').to.equal(limit);
    after = pageIds[pageIds.length - 1];
  }
}
