import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { createTestDatabase, csrfFrom, signUp, uniqueHandle, deleteRedisPrefix } from './support/harness.ts';
import { baseEnv, run } from './support/process.ts';
import { runCli } from '../src/cli.ts';
import { loadConfig } from '../src/config.ts';
import { createRuntime, type Runtime } from '../src/runtime.ts';
import { buildApp } from '../src/app.ts';
import { randomToken } from '../src/core/ids.ts';

class Capture {
  text = '';
  write(chunk: string) {
    this.text += chunk;
    return true;
  }
}

forEachTarget('admin CLI', (target) => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let dataDir: string;
  let env: Record<string, string>;
  let rt: Runtime | undefined;
  let app: ReturnType<typeof buildApp>;
  const prefix = `ptest_${randomToken(8)}`;

  const cli = async (...argv: string[]) => {
    const out = new Capture();
    const err = new Capture();
    const code = await runCli(argv, env, out, err);
    return { code, stdout: out.text, stderr: err.text };
  };

  /** The running app, built on the database after the CLI has migrated it. */
  const server = async () => {
    if (!rt) {
      rt = await createRuntime(loadConfig(env), { migrate: false });
      app = buildApp(rt);
    }
    return app;
  };

  before(async () => {
    database = await createTestDatabase(target);
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-cli-'));
    env = {
      NODE_ENV: 'test',
      DATABASE_URL: database.url,
      SESSION_SECRET: 'cli-test-session-secret-that-is-long-enough',
      PAYLINK_DATA_DIR: dataDir,
      BASE_URL: 'http://pay.test',
      LOG_LEVEL: 'silent',
      REDIS_PREFIX: prefix,
      ...(target.redisUrl ? { REDIS_URL: target.redisUrl } : {}),
    };
  });
  after(async () => {
    await rt?.close();
    await database?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (target.redisUrl) await deleteRedisPrefix(target.redisUrl, prefix);
  });

  it('migrate applies the migrations, prints JSON, and is idempotent', async () => {
    const first = await cli('migrate');
    expect(first.code, first.stderr).to.equal(0);
    const applied = JSON.parse(first.stdout).applied as string[];
    expect(applied.length).to.be.greaterThan(0);
    for (const name of applied) expect(name).to.match(/^\d{14}_[a-z0-9_]+$/);
    const second = await cli('migrate');
    expect(second.code).to.equal(0);
    expect(JSON.parse(second.stdout)).to.deep.equal({ applied: [] });
    expect(second.stderr).to.equal('');
  });

  it('create-merchant prints the merchant as JSON', async () => {
    const handle = uniqueHandle('cli');
    const res = await cli('create-merchant', '--handle', handle, '--name', 'Acme CLI', '--email', `Owner.${handle}@Example.test`, '--password', 'correct horse battery');
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout.trim().split('\n')).to.have.length(1);
    const merchant = JSON.parse(res.stdout);
    expect(merchant).to.include({ object: 'merchant', handle, name: 'Acme CLI', email: `owner.${handle}@example.test` });
    expect(merchant.id).to.match(/^mer_[0-9A-Za-z]{22}$/);
    expect(merchant).not.to.have.property('key');

    // The owner can log in with that password.
    const agent = supertest.agent(await server());
    const page = await agent.get('/login').expect(200);
    await agent.post('/login').type('form').send({ _csrf: csrfFrom(page.text), email: merchant.email, password: 'correct horse battery' }).expect(303);
  });

  it('refuses a duplicate handle, a duplicate email and a reserved handle: exit 1, reason on stderr, nothing on stdout, nothing written', async () => {
    const handle = uniqueHandle('dup');
    const email = `${handle}@example.test`;
    expect((await cli('create-merchant', '--handle', handle, '--name', 'First', '--email', email, '--password', 'correct horse battery')).code).to.equal(0);
    const count = async () => {
      await server();
      return Number((await rt!.db('merchants').count({ n: '*' }))[0].n);
    };
    const before = await count();
    for (const [h, e, field] of [
      [handle, `other.${email}`, 'handle'],
      [uniqueHandle('dup'), email, 'email'],
      ['admin', `admin.${email}`, 'handle'],
      ['api', `api.${email}`, 'handle'],
    ] as const) {
      const res = await cli('create-merchant', '--handle', h, '--name', 'Second', '--email', e, '--password', 'correct horse battery');
      expect(res.code, `${h} ${e}`).to.equal(1);
      expect(res.stdout).to.equal('');
      expect(res.stderr).to.include(`--${field}`);
    }
    expect(await count()).to.equal(before);
  });

  it('refuses invalid values with exit 1 (bad email, short password, line break in the name)', async () => {
    for (const args of [
      ['--handle', uniqueHandle(), '--name', 'X', '--email', 'not-an-email', '--password', 'correct horse battery'],
      ['--handle', uniqueHandle(), '--name', 'X', '--email', `${uniqueHandle()}@example.test`, '--password', 'short'],
      ['--handle', uniqueHandle(), '--name', 'X\r\nBcc: evil@example.test', '--email', `${uniqueHandle()}@example.test`, '--password', 'correct horse battery'],
    ]) {
      const res = await cli('create-merchant', ...args);
      expect(res.code).to.equal(1);
      expect(res.stdout).to.equal('');
      expect(res.stderr).to.match(/^error: /);
    }
  });

  it('prints usage and exits 2 for missing flags, unknown commands and options, touching nothing', async () => {
    for (const argv of [
      [],
      ['create-merchant', '--handle', 'acme'],
      ['create-merchant', '--handle', 'acme', '--name', '', '--email', 'a@b.test', '--password', 'correct horse battery'],
      ['api-key'],
      ['api-key', 'create'],
      ['api-key', 'delete', '--handle', 'acme'],
      ['reset-password', '--email', 'a@b.test'],
      ['frobnicate'],
      ['migrate', '--colour'],
      ['migrate', 'now'],
      ['create-merchant', '--handle'],
    ]) {
      const res = await cli(...argv);
      expect(res.code, argv.join(' ')).to.equal(2);
      expect(res.stdout, argv.join(' ')).to.equal('');
      expect(res.stderr).to.include('Usage: paylink');
    }
    const help = await cli('--help');
    expect(help.code).to.equal(0);
    expect(help.stdout).to.include('Usage: paylink');
  });

  it('api-key create prints only the secret, which then authenticates GET /api/v1/me', async () => {
    const handle = uniqueHandle('key');
    await cli('create-merchant', '--handle', handle, '--name', 'Keyed', '--email', `${handle}@example.test`, '--password', 'correct horse battery');
    const res = await cli('api-key', 'create', '--handle', handle, '--name', 'ci');
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.match(/^pl_live_[0-9A-Za-z]{40}\n$/);
    const secret = res.stdout.trim();
    expect(res.stderr).not.to.include(secret);

    const me = await supertest(await server()).get('/api/v1/me').set('Authorization', `Bearer ${secret}`).expect(200);
    expect(me.body).to.include({ object: 'merchant', handle });
    const merchant = await rt!.services.merchants.getByHandle(handle);
    const keys = await rt!.services.apiKeys.list(merchant!.key);
    expect(keys.map((k) => k.name)).to.deep.equal(['ci']);
  });

  it('api-key create for an unknown handle exits non-zero with nothing on stdout', async () => {
    const res = await cli('api-key', 'create', '--handle', 'no-such-merchant');
    expect(res.code).to.equal(1);
    expect(res.stdout).to.equal('');
    expect(res.stderr).to.include('no-such-merchant');
  });

  it('reset-password: the old password stops working, the new one works, and existing sessions are signed out', async () => {
    const acct = await signUp(await server());
    await acct.agent.get('/app').expect(200);

    const res = await cli('reset-password', '--email', acct.email.toUpperCase(), '--password', 'a brand new password');
    expect(res.code, res.stderr).to.equal(0);
    expect(JSON.parse(res.stdout)).to.include({ email: acct.email, password_reset: true });

    const gone = await acct.agent.get('/app').expect(303);
    expect(gone.headers.location).to.match(/^\/login/);

    const agent = supertest.agent(app);
    const page = await agent.get('/login').expect(200);
    const csrf = csrfFrom(page.text);
    await agent.post('/login').type('form').send({ _csrf: csrf, email: acct.email, password: acct.password }).expect(401);
    await agent.post('/login').type('form').send({ _csrf: csrf, email: acct.email, password: 'a brand new password' }).expect(303);
    await agent.get('/app').expect(200);
  });

  it('reset-password refuses an unknown email and a too-short password, changing nothing', async () => {
    const unknown = await cli('reset-password', '--email', 'nobody@example.test', '--password', 'a brand new password');
    expect(unknown.code).to.equal(1);
    expect(unknown.stdout).to.equal('');

    const acct = await signUp(await server());
    const before = (await rt!.db('users').where({ email: acct.email }).first()).password_hash;
    const short = await cli('reset-password', '--email', acct.email, '--password', 'short');
    expect(short.code).to.equal(1);
    expect(short.stderr).to.include('--password');
    expect((await rt!.db('users').where({ email: acct.email }).first()).password_hash).to.equal(before);
    await acct.agent.get('/app').expect(200);
  });

  it('reports a bad configuration with exit 1', async () => {
    const out = new Capture();
    const err = new Capture();
    const code = await runCli(['migrate'], { ...env, DATABASE_URL: 'postgres://x', PORT: 'abc' }, out, err);
    expect(code).to.equal(1);
    expect(err.text).to.include('DATABASE_URL').and.to.include('PORT');
    expect(out.text).to.equal('');
  });

  describe('through npm run', function () {
    // Four real `npm run` processes, each starting Node and tsx: how long that takes depends on the
    // machine's load, not on the CLI, so no time budget here; run() fails a process that hangs.
    this.timeout(0);

    it('npm run --silent paylink -- create-merchant / api-key create print machine-readable stdout', async () => {
      const handle = uniqueHandle('npm');
      const created = await run('npm', ['run', '--silent', 'paylink', '--', 'create-merchant', '--handle', handle, '--name', 'Via npm', '--email', `${handle}@example.test`, '--password', 'correct horse battery'], baseEnv(env));
      expect(created.code, created.stderr).to.equal(0);
      expect(JSON.parse(created.stdout)).to.include({ handle, name: 'Via npm' });

      const key = await run('npm', ['run', '--silent', 'paylink', '--', 'api-key', 'create', '--handle', handle], baseEnv(env));
      expect(key.code, key.stderr).to.equal(0);
      expect(key.stdout).to.match(/^pl_live_[0-9A-Za-z]{40}\n$/);
      await supertest(await server()).get('/api/v1/me').set('Authorization', `Bearer ${key.stdout.trim()}`).expect(200);

      const dup = await run('npm', ['run', '--silent', 'paylink', '--', 'create-merchant', '--handle', handle, '--name', 'Again', '--email', `x${handle}@example.test`, '--password', 'correct horse battery'], baseEnv(env));
      expect(dup.code).to.equal(1);
      expect(dup.stdout).to.equal('');

      const usage = await run('npm', ['run', '--silent', 'paylink', '--', 'create-merchant'], baseEnv(env));
      expect(usage.code).to.equal(2);
      expect(usage.stdout).to.equal('');
    });
  });
});
