// Boot: config → db → migrate → plugins → http + jobs; graceful shutdown on SIGTERM/SIGINT.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, loadConfig, type Config, type DatabaseConfig } from './config.ts';
import { createRuntime, type Runtime } from './runtime.ts';
import { buildApp } from './app.ts';
import { PluginLoadError } from './core/plugins/host.ts';
import { createDb, migrateLatest } from './core/db.ts';

/** From the signal to process exit. Requests in flight get most of it, closing the runtime the rest. */
const SHUTDOWN_DEADLINE_MS = 10_000;
const REQUEST_GRACE_MS = 7_000;

/** A startup problem the operator can fix; printed as one message, no stack trace. */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/** Applies pending migrations (serialised across processes by migrateLatest) with operator-friendly errors. */
export async function migrateOnStart(database: DatabaseConfig): Promise<string[]> {
  const db = createDb(database);
  try {
    return await migrateLatest(db);
  } catch (err) {
    if ((err as Error)?.name === 'MigrationLocked') {
      throw new StartupError(
        'The database migration lock is held (knex_migrations_lock.is_locked = 1). If no other process is migrating, a previous run was interrupted: ' +
          'clear it with `node --import tsx ./node_modules/knex/bin/cli.js --knexfile knexfile.ts migrate:unlock`.',
        { cause: err },
      );
    }
    throw err;
  } finally {
    await db.destroy();
  }
}

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new StartupError(`Port ${port} on ${host} is already in use. Stop the other process or set PORT to a free port.`, { cause: err }));
      else if (err.code === 'EACCES') reject(new StartupError(`Not allowed to listen on port ${port} on ${host}. Use a port above 1023 or run behind a proxy.`, { cause: err }));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new StartupError(`HOST ${host} is not an address of this machine.`, { cause: err }));
      else reject(err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startServer(env: NodeJS.ProcessEnv = process.env): Promise<{ server: http.Server; runtime: Runtime; url: string; stop: () => Promise<void> }> {
  let config: Readonly<Config> = loadConfig(env);

  let handler: http.RequestListener = (_req, res) => {
    res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '1', Connection: 'close' }).end('{"status":"starting"}');
  };
  const server = http.createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 5_000;

  // PORT=0 picks a free port; without BASE_URL, public URLs must carry the real one, so bind first.
  const bindEarly = config.port === 0 && !env.BASE_URL?.trim();
  let port = config.port;
  if (bindEarly) {
    port = await listen(server, config.port, config.host);
    config = loadConfig({ ...env, PORT: String(port) });
  }

  let runtime: Runtime;
  try {
    await migrateOnStart(config.database);
    runtime = await createRuntime(config, { migrate: false });
  } catch (err) {
    server.close();
    throw err;
  }
  try {
    handler = buildApp(runtime);
    if (!bindEarly) port = await listen(server, config.port, config.host);
  } catch (err) {
    server.close();
    await runtime.close().catch(() => {});
    throw err;
  }
  runtime.startBackground();
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${shownHost}:${port}`;

  let shuttingDown = false;
  // Responses started during shutdown close their connection instead of keeping it alive.
  server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (shuttingDown) res.setHeader('Connection', 'close');
  });

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      shuttingDown = true;
      // Stop accepting. Requests in flight finish; a keep-alive connection closes as soon as it is idle.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Live dashboard streams never finish by themselves: end them (browsers reconnect elsewhere).
      runtime.live.endStreams();
      server.closeIdleConnections();
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const grace = setTimeout(() => server.closeAllConnections(), REQUEST_GRACE_MS);
      try {
        await closed;
      } finally {
        clearInterval(sweep);
        clearTimeout(grace);
      }
      await runtime.close();
    })());
  return { server, runtime, url, stop };
}

async function main(): Promise<void> {
  let started: Awaited<ReturnType<typeof startServer>>;
  try {
    started = await startServer();
  } catch (err) {
    if (err instanceof ConfigError || err instanceof PluginLoadError || err instanceof StartupError) {
      process.stderr.write(`Paylink could not start. ${err.message}\n`);
    } else {
      process.stderr.write(`Paylink could not start: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    }
    process.exit(1);
  }
  const { runtime, url, stop } = started;
  const db = runtime.config.database.client === 'mysql' ? 'MySQL/MariaDB' : `SQLite ${runtime.config.database.filename}`;
  runtime.log.info(`Paylink listening on ${url} (public URL ${runtime.config.baseUrl}; ${db}${runtime.redis ? ' + Redis' : ''})`);

  const onSignal = (signal: string) => {
    runtime.log.info(`${signal} received, shutting down`);
    const force = setTimeout(() => {
      runtime.log.error(`shutdown took longer than ${SHUTDOWN_DEADLINE_MS / 1000} s; exiting`);
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    force.unref();
    stop().then(
      () => {
        runtime.log.info('shutdown complete');
        process.exit(0);
      },
      (err) => {
        runtime.log.error('shutdown failed', { error: err });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('src/server.ts')) {
  void main();
}
