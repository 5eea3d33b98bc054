// Admin CLI: `npm run --silent paylink -- <command>`. Machine-readable output on stdout, errors on stderr.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { createDb, migrateLatest } from './core/db.ts';
import { createRuntime } from './runtime.ts';
import { createLogger } from './core/log.ts';
import { AppError, ValidationError } from './core/errors.ts';
import { PluginLoadError } from './core/plugins/host.ts';
import { merchantJson } from './features/merchants/service.ts';
import { apiKeyJson } from './features/api-keys/service.ts';

const USAGE = `Usage: paylink <command> [options]

Commands:
  migrate                                         apply pending database migrations
  create-merchant --handle H --name N --email E --password P
                                                  create a merchant and its owner; prints merchant JSON
  api-key create --handle H [--name NAME]         create an API key; prints the secret once
  reset-password --email E --password P           set a user's password; signs them out everywhere
`;

class UsageError extends Error {}

function required(values: Record<string, string | boolean | undefined>, ...names: string[]): Record<string, string> {
  const missing = names.filter((n) => typeof values[n] !== 'string' || values[n] === '');
  if (missing.length) throw new UsageError(`missing ${missing.map((n) => `--${n}`).join(', ')}`);
  return values as Record<string, string>;
}

export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env, out = process.stdout, err = process.stderr): Promise<number> {
  const write = (s: string) => out.write(s.endsWith('\n') ? s : s + '\n');
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        handle: { type: 'string' },
        name: { type: 'string' },
        email: { type: 'string' },
        password: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const [command, sub] = positionals;
    if (!command || values.help) {
      (command ? out : err).write(USAGE);
      return command ? 0 : 2;
    }
    const config = loadConfig({ LOG_LEVEL: 'warn', ...env });

    if (command === 'migrate') {
      const db = createDb(config.database);
      try {
        const applied = await migrateLatest(db);
        write(JSON.stringify({ applied }));
      } finally {
        await db.destroy();
      }
      return 0;
    }

    const known = ['create-merchant', 'api-key', 'reset-password'];
    if (!known.includes(command)) throw new UsageError(`unknown command "${command}"`);
    const rt = await createRuntime(config, { log: createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel) });
    try {
      if (command === 'create-merchant') {
        const v = required(values, 'handle', 'name', 'email', 'password');
        const { merchant } = await rt.services.merchants.signUp({ handle: v.handle, name: v.name, email: v.email, password: v.password });
        write(JSON.stringify(merchantJson(merchant)));
      } else if (command === 'api-key') {
        if (sub !== 'create') throw new UsageError('usage: api-key create --handle H [--name NAME]');
        const v = required(values, 'handle');
        const merchant = await rt.services.merchants.getByHandle(v.handle);
        if (!merchant) throw new AppError('not_found', 404, `no merchant with handle "${v.handle}"`);
        const { secret, apiKey } = await rt.services.apiKeys.create(merchant, { name: values.name ?? 'CLI' });
        write(secret);
        err.write(`created ${apiKey.id} (${JSON.stringify(apiKeyJson(apiKey).name)}); store the secret now, it is not shown again\n`);
      } else if (command === 'reset-password') {
        const v = required(values, 'email', 'password');
        const user = await rt.services.merchants.resetPassword(v.email, v.password);
        write(JSON.stringify({ id: user.id, email: user.email, password_reset: true }));
      }
    } finally {
      await rt.close();
    }
    return 0;
  } catch (e) {
    if (e instanceof ValidationError) {
      err.write(`error: ${e.errors.map((x) => `${x.field}: ${x.message}`).join('; ')}\n`);
      return 1;
    }
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      err.write(`error: ${(e as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof ConfigError || e instanceof PluginLoadError || e instanceof AppError) {
      err.write(`error: ${(e as Error).message}\n`);
      return 1;
    }
    err.write(`error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    return 1;
  }
}

if (process.argv[1]?.endsWith('src/cli.ts')) {
  runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
