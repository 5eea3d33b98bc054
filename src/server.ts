// Boot: config → db → migrate → plugins → http + jobs; graceful shutdown on SIGTERM/SIGINT.
import http from 'node:http';
import { ConfigError, loadConfig } from './config.ts';
import { createRuntime, type Runtime } from './runtime.ts';
import { buildApp } from './app.ts';
import { PluginLoadError } from './core/plugins/host.ts';

const SHUTDOWN_DEADLINE_MS = 10_000;

export async function startServer(env: NodeJS.ProcessEnv = process.env): Promise<{ server: http.Server; runtime: Runtime; url: string; stop: () => Promise<void> }> {
  const config = loadConfig(env);
  const runtime = await createRuntime(config);
  const app = buildApp(runtime);
  const server = http.createServer(app);
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  runtime.startBackground();
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const url = `http://${shownHost}:${port}`;

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      // Stop accepting; idle keep-alive sockets close now, in-flight requests finish.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await closed;
      await runtime.close();
    })());
  return { server, runtime, url, stop };
}

async function main(): Promise<void> {
  let started: Awaited<ReturnType<typeof startServer>>;
  try {
    started = await startServer();
  } catch (err) {
    if (err instanceof ConfigError || err instanceof PluginLoadError) {
      process.stderr.write(`${err.message}\n`);
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
