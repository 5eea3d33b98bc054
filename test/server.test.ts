import { expect } from 'chai';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import supertest from 'supertest';
import { createClient } from 'redis';
import { MARIADB_TARGET } from './support/targets.ts';
import { createTestDatabase, csrfFrom, uniqueHandle } from './support/harness.ts';
import { baseEnv, ensureStopped, startServerProcess, type ServerProcess } from './support/process.ts';
import { waitFor } from './support/wait.ts';
import { randomToken } from '../src/core/ids.ts';
import { createDb, migrateLatest } from '../src/core/db.ts';
import { migrateOnStart } from '../src/server.ts';

/** Reads the server's SQLite file directly (after the process has exited, or read-only while it runs). */
async function withSqlite<T>(file: string, fn: (db: ReturnType<typeof createDb>) => Promise<T>): Promise<T> {
  const db = createDb({ client: 'sqlite', filename: file });
  try {
    return await fn(db);
  } finally {
    await db.destroy();
  }
}

/** Signs up through the real forms of a running server; returns the session cookie. */
async function signUpOn(url: string): Promise<{ cookie: string; handle: string; email: string; password: string }> {
  const agent = supertest.agent(url);
  const page = await agent.get('/signup').expect(200);
  const handle = uniqueHandle('srv');
  const email = `${handle}@example.test`;
  const password = 'correct horse battery';
  const res = await agent.post('/signup').type('form').send({ _csrf: csrfFrom(page.text), name: `Shop ${handle}`, handle, email, password }).expect(303);
  const cookie = String(res.headers['set-cookie']).split(';')[0];
  await supertest(url).get('/app').set('Cookie', cookie).expect(200);
  return { cookie, handle, email, password };
}

/** GET /health on a fresh connection: the status code, or the connection error code. */
function probe(url: string): Promise<number | string> {
  return new Promise((resolve) => {
    http
      .get(`${url}/health`, { agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      })
      .on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/**
 * Sends a request whose body arrives in two parts; resolves with the response. `inFlight` resolves
 * once the server has parsed the headers and is handling the request: it sends `Expect:
 * 100-continue`, so the server's "100 Continue" is the proof (then the first half of the body goes).
 */
function slowRequest(url: string, pathName: string, headers: Record<string, string>, body: string) {
  const u = new URL(url);
  const half = Math.floor(body.length / 2);
  let sendRest!: () => void;
  let inFlight!: Promise<void>;
  const response = new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: pathName, method: 'POST', agent: false, headers: { ...headers, Expect: '100-continue', 'Content-Length': String(Buffer.byteLength(body)) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    inFlight = new Promise<void>((continued) =>
      req.once('continue', () => {
        req.write(body.slice(0, half));
        continued();
      }),
    );
    req.flushHeaders();
    sendRest = () => req.end(body.slice(half));
  });
  return { response, inFlight, sendRest: () => sendRest() };
}

describe('server process [sqlite]', function () {
  // Each test starts real Node processes: a backstop for a hang, not a speed budget.
  this.timeout(5 * 60_000);
  let dataDir: string;
  let server: ServerProcess | undefined;
  const env = () => baseEnv({ PAYLINK_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', BASE_URL: 'http://pay.test', LOG_LEVEL: 'info' });

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-server-'));
  });
  afterEach(async () => {
    await ensureStopped(server);
    server = undefined;
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts on a fresh data directory: creates the database, migrates, writes secrets.json 0600 and logs its real port', async () => {
    server = await startServerProcess(env());
    expect(server.port).to.be.greaterThan(0);
    expect(server.stderr().match(/Paylink listening on/g)).to.have.length(1);
    await supertest(server.url).get('/health').expect(200, { status: 'ok' });
    const ready = await supertest(server.url).get('/health/ready').expect(200);
    expect(ready.body.checks.database.status).to.equal('ok');

    const secrets = path.join(dataDir, 'secrets.json');
    expect(fs.statSync(secrets).mode & 0o777).to.equal(0o600);
    expect(JSON.parse(fs.readFileSync(secrets, 'utf8')).sessionSecret).to.have.length.greaterThanOrEqual(32);
    const migrations = await withSqlite(path.join(dataDir, 'paylink.db'), (db) => db('knex_migrations').select('name'));
    expect(migrations.length).to.be.greaterThan(0);
    for (const m of migrations) expect(m.name).not.to.match(/\.(ts|js)$/);
    const exit = await server.stop('SIGTERM');
    expect(exit.code).to.equal(0);
  });

  it('without BASE_URL, shows public URLs on the real port it picked for PORT=0', async () => {
    server = await startServerProcess(baseEnv({ PAYLINK_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' }));
    expect(server.stderr()).to.include(`public URL http://localhost:${server.port}`);
    const account = await signUpOn(server.url);
    const dash = await supertest(server.url).get('/app').set('Cookie', account.cookie).expect(200);
    expect(dash.text).to.include(`http://localhost:${server.port}/${account.handle}`);
    expect((await server.stop('SIGTERM')).code).to.equal(0);
  });

  it('keeps its secret across a restart, so sessions survive it', async () => {
    server = await startServerProcess(env());
    const account = await signUpOn(server.url);
    const secretBefore = fs.readFileSync(path.join(dataDir, 'secrets.json'), 'utf8');
    expect((await server.stop('SIGTERM')).code).to.equal(0);

    server = await startServerProcess(env());
    expect(fs.readFileSync(path.join(dataDir, 'secrets.json'), 'utf8')).to.equal(secretBefore);
    const dash = await supertest(server.url).get('/app').set('Cookie', account.cookie).expect(200);
    expect(dash.text).to.include(account.handle);
    expect((await server.stop('SIGINT')).code).to.equal(0);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`on ${signal} finishes the request in flight, refuses new connections and exits 0 within 10 s`, async () => {
      server = await startServerProcess(env());
      const agent = supertest.agent(server.url);
      const page = await agent.get('/signup').expect(200);
      const cookie = String(page.headers['set-cookie']).split(';')[0];
      const handle = uniqueHandle('inflight');
      const body = new URLSearchParams({ _csrf: csrfFrom(page.text), name: 'In Flight', handle, email: `${handle}@example.test`, password: 'correct horse battery' }).toString();

      const slow = slowRequest(server.url, '/signup', { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded' }, body);
      await slow.inFlight;
      const stopping = server.stop(signal);
      // Shutting down: the listener closes at once, while the request in flight keeps the process up.
      await waitFor(async () => (await probe(server!.url)) === 'ECONNREFUSED', { timeout: 10_000, message: 'the server to stop accepting connections' });
      expect(server.proc.exitCode, 'still serving the request in flight').to.equal(null);
      expect(server.stderr()).to.include(`${signal} received, shutting down`);

      slow.sendRest();
      const res = await slow.response;
      expect(res.status).to.equal(303);
      expect(res.headers.location).to.equal('/app');
      const exit = await stopping;
      expect(exit.code).to.equal(0);
      expect(exit.ms).to.be.lessThan(10_000);

      // The sign-up really was written before the process exited.
      const row = await withSqlite(path.join(dataDir, 'paylink.db'), (db) => db('merchants').where({ handle }).first('handle'));
      expect(row).to.deep.equal({ handle });
    });
  }

  it('does not wait for idle keep-alive connections when shutting down', async () => {
    server = await startServerProcess(env());
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) =>
      http.get(`${server!.url}/health`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      }).on('error', reject),
    );
    const exit = await server.stop('SIGTERM');
    agent.destroy();
    expect(exit.code).to.equal(0);
    expect(exit.ms).to.be.lessThan(3_000); // not the 5 s keep-alive timeout
  });

  it('exits 1 with a clear message when the port is taken', async () => {
    server = await startServerProcess(env());
    const second = await startServerProcess({ ...env(), PORT: String(server.port) }).then(
      () => null,
      (err: Error) => err.message,
    );
    expect(second).to.match(/exited \(1\)/);
    expect(second).to.include(String(server.port));
    expect(second).not.to.match(/\n\s+at /);
  });
});

if (MARIADB_TARGET) {
  const target = MARIADB_TARGET;

  describe('migrating on start with several processes [mariadb]', function () {
    this.timeout(5 * 60_000);

    it('negative control: plain concurrent migrations on an empty database fail', async () => {
      const database = await createTestDatabase(target);
      const dbs = [0, 1, 2, 3].map(() => createDb({ client: 'mysql', url: database.url }));
      try {
        const results = await Promise.allSettled(dbs.map((db) => db.migrate.latest()));
        expect(results.some((r) => r.status === 'rejected')).to.equal(true);
      } finally {
        for (const db of dbs) await db.destroy();
        await database.drop();
      }
    });

    it('serialises concurrent starts: exactly one applies the migrations, none fails', async () => {
      const database = await createTestDatabase(target);
      try {
        const results = await Promise.all([0, 1, 2, 3].map(() => migrateOnStart({ client: 'mysql', url: database.url })));
        expect(results.filter((applied) => applied.length > 0)).to.have.length(1);
        const db = createDb({ client: 'mysql', url: database.url });
        try {
          expect(await db('knex_migrations_lock').select('is_locked')).to.deep.equal([{ is_locked: 0 }]);
        } finally {
          await db.destroy();
        }
      } finally {
        await database.drop();
      }
    });
  });
  describe('server processes in scaled mode [mariadb]', function () {
    this.timeout(5 * 60_000);
    let database: Awaited<ReturnType<typeof createTestDatabase>>;
    let dataDir: string;
    const prefix = `ptest_${randomToken(8)}`;
    let a: ServerProcess | undefined;
    let b: ServerProcess | undefined;

    before(async () => {
      database = await createTestDatabase(target);
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-scaled-'));
      const env = baseEnv({
        DATABASE_URL: database.url,
        REDIS_URL: target.redisUrl!,
        REDIS_PREFIX: prefix,
        SESSION_SECRET: `shared-${randomToken(40)}`,
        PAYLINK_DATA_DIR: dataDir,
        PORT: '0',
        HOST: '127.0.0.1',
        BASE_URL: 'http://pay.test',
        LOG_LEVEL: 'info',
      });
      // Both start at once on an empty database: only one may migrate, neither may crash.
      [a, b] = await Promise.all([startServerProcess(env), startServerProcess(env)]);
    });
    after(async () => {
      await ensureStopped(a);
      await ensureStopped(b);
      await database?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
      const redis = createClient({ url: target.redisUrl! });
      redis.on('error', () => {});
      await redis.connect();
      for await (const keys of redis.scanIterator({ MATCH: `${prefix}:*`, COUNT: 500 })) if (keys.length) await redis.del(keys);
      await redis.quit();
    });

    it('writes no secrets.json: the shared SESSION_SECRET is used', () => {
      expect(fs.existsSync(path.join(dataDir, 'secrets.json'))).to.equal(false);
    });

    it('both processes report ready (database and Redis)', async () => {
      for (const p of [a!, b!]) {
        const res = await supertest(p.url).get('/health/ready').expect(200);
        expect(res.body.checks).to.deep.include({ database: { status: 'ok' }, redis: { status: 'ok' } });
      }
    });

    it('a session started on one process works on the other, and each sees the other’s writes', async () => {
      const account = await signUpOn(a!.url);
      const onB = await supertest(b!.url).get('/app/settings').set('Cookie', account.cookie).expect(200);
      expect(onB.text).to.include(account.handle);

      // Create an API key through B's settings page, use it against A.
      const created = await supertest(b!.url).post('/app/settings/api-keys').set('Cookie', account.cookie).type('form').send({ _csrf: csrfFrom(onB.text), name: 'scaled' }).expect(201);
      const secret = /id="new-key-secret">([^<]+)</.exec(created.text)![1];
      const me = await supertest(a!.url).get('/api/v1/me').set('Authorization', `Bearer ${secret}`).expect(200);
      expect(me.body.handle).to.equal(account.handle);

      // Save settings on A; B reads the change.
      const onA = await supertest(a!.url).get('/app/settings').set('Cookie', account.cookie).expect(200);
      await supertest(a!.url)
        .post('/app/settings')
        .set('Cookie', account.cookie)
        .type('form')
        .send({ _csrf: csrfFrom(onA.text), name: 'Renamed on A', handle: account.handle, currency: 'USD', timezone: 'Europe/Berlin', brand_color: '#123456' })
        .expect(303);
      const meOnB = await supertest(b!.url).get('/api/v1/me').set('Authorization', `Bearer ${secret}`).expect(200);
      expect(meOnB.body).to.include({ name: 'Renamed on A', currency: 'USD', timezone: 'Europe/Berlin', brand_color: '#123456' });

      // Logging out on B ends the session on A too.
      const page = await supertest(b!.url).get('/app').set('Cookie', account.cookie).expect(200);
      await supertest(b!.url).post('/logout').set('Cookie', account.cookie).type('form').send({ _csrf: csrfFrom(page.text) }).expect(303);
      await supertest(a!.url).get('/app').set('Cookie', account.cookie).expect(303);
    });

    it('both exit 0 on SIGTERM', async () => {
      const [ea, eb] = await Promise.all([a!.stop('SIGTERM'), b!.stop('SIGTERM')]);
      expect([ea.code, eb.code]).to.deep.equal([0, 0]);
      expect(Math.max(ea.ms, eb.ms)).to.be.lessThan(10_000);
    });
  });
}
