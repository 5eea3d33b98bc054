import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/config.ts';
import { baseEnv, run } from './support/process.ts';

const SECRET = 'a-shared-session-secret-of-at-least-32-chars';

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env, '/srv/paylink');
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('runs with no variables at all: port 3000, SQLite in ./data, public URL on localhost', () => {
    const c = loadConfig({}, '/srv/paylink');
    expect(c.port).to.equal(3000);
    expect(c.database).to.deep.equal({ client: 'sqlite', filename: '/srv/paylink/data/paylink.db' });
    expect(c.dataDir).to.equal('/srv/paylink/data');
    expect(c.baseUrl).to.equal('http://localhost:3000');
    expect(c.secureCookies).to.equal(false);
    expect(c.redisUrl).to.equal(null);
    expect(c.sessionSecret).to.equal(null);
    expect(c.plugins).to.deep.equal([]);
    expect(Object.isFrozen(c)).to.equal(true);
  });

  it('derives the default public URL from PORT and treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '8080' }).baseUrl).to.equal('http://localhost:8080');
    const c = loadConfig({ PORT: '', BASE_URL: '', DATABASE_URL: ' ', REDIS_URL: '' }, '/srv/paylink');
    expect(c.port).to.equal(3000);
    expect(c.redisUrl).to.equal(null);
    expect(c.database).to.deep.equal({ client: 'sqlite', filename: '/srv/paylink/data/paylink.db' });
  });

  it('keeps the default database inside PAYLINK_DATA_DIR', () => {
    const c = loadConfig({ PAYLINK_DATA_DIR: '/var/lib/paylink' }, '/srv/paylink');
    expect(c.database).to.deep.equal({ client: 'sqlite', filename: '/var/lib/paylink/paylink.db' });
  });

  it('accepts a plain SQLite path, sqlite:// with an absolute or relative path, and :memory:', () => {
    expect(loadConfig({ DATABASE_URL: './db/p.db' }, '/srv/paylink').database).to.deep.equal({ client: 'sqlite', filename: '/srv/paylink/db/p.db' });
    expect(loadConfig({ DATABASE_URL: 'sqlite:///var/lib/paylink.db' }, '/srv/paylink').database).to.deep.equal({ client: 'sqlite', filename: '/var/lib/paylink.db' });
    expect(loadConfig({ DATABASE_URL: 'sqlite://rel/p.db' }, '/srv/paylink').database).to.deep.equal({ client: 'sqlite', filename: '/srv/paylink/rel/p.db' });
    expect(loadConfig({ DATABASE_URL: ':memory:' }).database).to.deep.equal({ client: 'sqlite', filename: ':memory:' });
  });

  it('accepts mysql:// with a database name and a shared SESSION_SECRET', () => {
    const url = 'mysql://paylink:s3cret@db.internal:3306/paylink';
    const c = loadConfig({ DATABASE_URL: url, SESSION_SECRET: SECRET, REDIS_URL: 'redis://cache:6379' });
    expect(c.database).to.deep.equal({ client: 'mysql', url });
    expect(c.sessionSecret).to.equal(SECRET);
    expect(c.redisUrl).to.equal('redis://cache:6379');
  });

  it('gives the database deadlines defaults, reads them in milliseconds, and refuses nonsense', () => {
    expect(loadConfig({}).dbTimeouts).to.deep.equal({ acquireMs: 1_500, stallMs: 750, statementMs: 30_000 });
    expect(loadConfig({ DB_ACQUIRE_TIMEOUT_MS: '5000', DB_STALL_TIMEOUT_MS: '2000', DB_QUERY_TIMEOUT_MS: '0' }).dbTimeouts).to.deep.equal({ acquireMs: 5_000, stallMs: 2_000, statementMs: 0 });
    const err = configError({ DB_ACQUIRE_TIMEOUT_MS: '2s', DB_STALL_TIMEOUT_MS: '10', DB_QUERY_TIMEOUT_MS: '-1' });
    expect(err.problems.map((p) => p.variable)).to.deep.equal(['DB_ACQUIRE_TIMEOUT_MS', 'DB_STALL_TIMEOUT_MS', 'DB_QUERY_TIMEOUT_MS']);
  });

  it('requires SESSION_SECRET with MySQL, since every process must share it', () => {
    const err = configError({ DATABASE_URL: 'mysql://root@127.0.0.1:3306/paylink' });
    expect(err.problems.map((p) => p.variable)).to.deep.equal(['SESSION_SECRET']);
    expect(err.message).to.include('SESSION_SECRET');
  });

  it('refuses a short SESSION_SECRET and a mysql:// URL without a database', () => {
    expect(configError({ SESSION_SECRET: 'short' }).problems.map((p) => p.variable)).to.deep.equal(['SESSION_SECRET']);
    expect(configError({ DATABASE_URL: 'mysql://root@127.0.0.1:3306', SESSION_SECRET: SECRET }).problems.map((p) => p.variable)).to.deep.equal(['DATABASE_URL']);
  });

  it('uses secure cookies behind an https BASE_URL and drops a trailing slash', () => {
    const c = loadConfig({ BASE_URL: 'https://pay.example.com/' });
    expect(c.baseUrl).to.equal('https://pay.example.com');
    expect(c.secureCookies).to.equal(true);
  });

  it('reports every bad variable in one error', () => {
    const err = configError({
      PORT: 'abc',
      BASE_URL: 'ftp://x',
      REDIS_URL: 'http://x',
      DATABASE_URL: 'postgres://x',
      PAYLINK_PLUGIN_X: '{not json',
      PAYLINK_PLUGIN_Y: '[1, 2]',
      LOG_LEVEL: 'chatty',
      TRUST_PROXY: 'yes please!',
      VONAGE_API_KEY: 'k',
    });
    const variables = err.problems.map((p) => p.variable);
    expect(variables).to.have.members(['PORT', 'BASE_URL', 'REDIS_URL', 'DATABASE_URL', 'PAYLINK_PLUGIN_X', 'PAYLINK_PLUGIN_Y', 'LOG_LEVEL', 'TRUST_PROXY', 'VONAGE_API_SECRET']);
    for (const v of variables) expect(err.message).to.include(v);
    expect(err.code).to.equal('invalid_config');
  });

  for (const [name, value] of [
    ['PORT', '65536'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['PORT', '0x50'],
    ['BASE_URL', 'pay.example.com'],
    ['BASE_URL', 'javascript:alert(1)'],
    ['BASE_URL', 'https://user:pw@pay.example.com'],
    ['BASE_URL', 'https://pay.example.com/?ref=1'],
    ['REDIS_URL', 'redis://'],
    ['DATABASE_URL', 'mysql://'],
    ['NODE_ENV', 'staging'],
    ['SMTP_URL', 'http://mail'],
  ] as const) {
    it(`refuses ${name}=${value}`, () => {
      expect(configError({ [name]: value, SESSION_SECRET: SECRET }).problems.map((p) => p.variable)).to.include(name);
    });
  }

  it('reads per-plugin JSON settings and the plugin list', () => {
    const c = loadConfig({ PAYLINK_PLUGINS: ' paylink-plugin-a , @acme/paylink-b ,', PAYLINK_PLUGIN_PROVIDER_SANDBOX: '{"delayMs": 5}' });
    expect(c.plugins).to.deep.equal(['paylink-plugin-a', '@acme/paylink-b']);
    expect(c.pluginSettings).to.deep.equal({ 'provider-sandbox': { delayMs: 5 } });
  });

  it('accepts PORT=0 (any free port) and TRUST_PROXY forms', () => {
    expect(loadConfig({ PORT: '0' }).port).to.equal(0);
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).to.equal(true);
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).to.equal(2);
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8' }).trustProxy).to.equal('loopback, 10.0.0.0/8');
  });

  describe('a server started with a bad environment', function () {
    this.timeout(30_000);
    let dir: string;
    before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paylink-config-'))));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('exits 1 and names every bad variable on stderr, writing nothing', async () => {
      const res = await run(
        process.execPath,
        ['--import', 'tsx', 'src/server.ts'],
        baseEnv({
          PAYLINK_DATA_DIR: dir,
          PORT: 'abc',
          BASE_URL: 'ftp://x',
          REDIS_URL: 'http://x',
          DATABASE_URL: 'postgres://x',
          PAYLINK_PLUGIN_X: '{bad json',
        }),
      );
      expect(res.code).to.equal(1);
      for (const v of ['PORT', 'BASE_URL', 'REDIS_URL', 'DATABASE_URL', 'PAYLINK_PLUGIN_X']) expect(res.stderr).to.include(v);
      expect(res.stderr).not.to.match(/\n\s+at /); // a message, not a stack trace
      expect(res.stdout).to.equal('');
      expect(fs.readdirSync(dir)).to.deep.equal([]);
    });

    it('exits 1 when MySQL is configured without SESSION_SECRET', async () => {
      const res = await run(process.execPath, ['--import', 'tsx', 'src/server.ts'], baseEnv({ PAYLINK_DATA_DIR: dir, DATABASE_URL: 'mysql://root@127.0.0.1:3306/paylink' }));
      expect(res.code).to.equal(1);
      expect(res.stderr).to.include('SESSION_SECRET');
    });
  });
});
