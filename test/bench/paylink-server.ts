// A Paylink server for the analytics bench: the production app (config from the environment, no
// migrations), with view recording on or off (BENCH_RECORD_VIEWS=0) — src/server.ts takes no
// RuntimeOptions, and the bench compares the same pay page with and without recording.
// SIGTERM closes the runtime, which writes every queued view before the process exits.
import http from 'node:http';
import { loadConfig } from '../../src/config.ts';
import { createRuntime } from '../../src/runtime.ts';
import { buildApp } from '../../src/app.ts';

const config = loadConfig(process.env);
const rt = await createRuntime(config, { migrate: false, recordViews: process.env.BENCH_RECORD_VIEWS !== '0' });
const server = http.createServer(buildApp(rt));
server.keepAliveTimeout = 5_000;
server.listen(config.port, config.host);

process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  rt.close().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`closing failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
});
