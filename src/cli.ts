// Admin CLI: `npm run --silent paylink -- <command>`. Machine-readable output on stdout, errors on stderr.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { createRuntime } from './runtime.ts';
import { createLogger } from './core/log.ts';
import { AppError, ValidationError } from './core/errors.ts';
import { PluginLoadError } from './core/plugins/host.ts';
import { merchantJson } from './features/merchants/index.ts';
import { apiKeyJson } from './features/api-keys/index.ts';
import { StartupError, migrateOnStart } from './server.ts';

const USAGE = `Usage: paylink <command> [options]

Commands:
  migrate                                         apply pending database migrations; prints {"applied":[…]}
  create-merchant --handle H --name N --email E --password P
                                                  create a merchant and its owner; prints merchant JSON
  api-key create --handle H [--name NAME]         create an API key; prints the secret once
  reset-password --email E --password P           set a user's password; signs them out everywhere
  invite --email E                                an invitation to sign up with that email (PAYLINK_SIGNUP=invite):
                                                  prints {"email","url","expires_at"}; single use, 7 days

The CLI reads the same environment as the server (DATABASE_URL, REDIS_URL, SESSION_SECRET, …).
Exit codes: 0 done, 1 refused or failed (reason on stderr), 2 usage error.
`;

class UsageError extends Error {}

export interface Output {
  write(chunk: string): unknown;
}

function required(values: Record<string, string | boolean | undefined>, ...names: string[]): Record<string, string> {
  const missing = names.filter((n) => typeof values[n] !== 'string' || (values[n] as string).trim() === '');
  if (missing.length) throw new UsageError(`missing ${missing.map((n) => `--${n}`).join(', ')}`);
  return values as Record<string, string>;
}

/** Runs one command; returns the process exit code. Never throws. */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env, out: Output = process.stdout, err: Output = process.stderr): Promise<number> {
  const write = (s: string) => out.write(s.endsWith('\n') ? s : s + '\n');
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        handle: { type: 'string' },
        name: { type: 'string' },
        email: { type: 'string' },
        password: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const [command, sub, ...extra] = positionals;
    if (values.help || command === 'help') {
      out.write(USAGE);
      return 0;
    }
    if (!command) {
      err.write(USAGE);
      return 2;
    }
    const commands: Record<string, { sub?: string[]; options: string[] }> = {
      migrate: { options: [] },
      'create-merchant': { options: ['handle', 'name', 'email', 'password'] },
      'api-key': { sub: ['create'], options: ['handle', 'name'] },
      'reset-password': { options: ['email', 'password'] },
      invite: { options: ['email'] },
    };
    const spec = commands[command];
    if (!spec) throw new UsageError(`unknown command "${command}"`);
    if (spec.sub ? !sub || !spec.sub.includes(sub) || extra.length : sub !== undefined) {
      throw new UsageError(spec.sub ? `usage: ${command} ${spec.sub.join('|')} …` : `unexpected argument "${sub}"`);
    }
    const stray = Object.keys(values).filter((k) => k !== 'help' && !spec.options.includes(k));
    if (stray.length) throw new UsageError(`${command} does not take ${stray.map((k) => `--${k}`).join(', ')}`);
    // Check the flags before touching the database, so a usage mistake changes nothing.
    const v =
      command === 'create-merchant'
        ? required(values, 'handle', 'name', 'email', 'password')
        : command === 'api-key'
          ? required(values, 'handle')
          : command === 'reset-password'
            ? required(values, 'email', 'password')
            : command === 'invite'
              ? required(values, 'email')
              : {};

    const config = loadConfig({ LOG_LEVEL: 'warn', ...env });
    // The same lock as the server, so a CLI run beside starting servers is safe.
    const applied = await migrateOnStart(config.database);
    if (command === 'migrate') {
      write(JSON.stringify({ applied }));
      return 0;
    }

    const rt = await createRuntime(config, { migrate: false, log: createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel) });
    try {
      if (command === 'create-merchant') {
        const { merchant } = await rt.services.merchants.signUp({ handle: v.handle, name: v.name, email: v.email, password: v.password });
        write(JSON.stringify(merchantJson(merchant)));
      } else if (command === 'api-key') {
        const merchant = await rt.services.merchants.getByHandle(v.handle.trim());
        if (!merchant) throw new AppError('not_found', 404, `no merchant with handle "${v.handle}"`);
        const { secret, apiKey } = await rt.services.apiKeys.create(merchant, { name: values.name ?? 'CLI' });
        write(secret);
        err.write(`created ${apiKey.id} (${JSON.stringify(apiKeyJson(apiKey).name)}) for ${merchant.handle}; store the secret now, it is not shown again\n`);
      } else if (command === 'reset-password') {
        const user = await rt.services.merchants.resetPassword(v.email, v.password);
        write(JSON.stringify({ id: user.id, email: user.email, password_reset: true }));
      } else if (command === 'invite') {
        const invitation = await rt.services.accounts.createInvitation(v.email);
        write(JSON.stringify({ email: invitation.email, url: invitation.url, expires_at: invitation.expiresAt.toISOString() }));
        if (config.signup !== 'invite') err.write(`note: PAYLINK_SIGNUP is ${config.signup}; the invitation is only needed with PAYLINK_SIGNUP=invite\n`);
      }
    } finally {
      await rt.close();
    }
    return 0;
  } catch (e) {
    if (e instanceof ValidationError) {
      err.write(`error: ${e.errors.map((x) => (x.field && x.field !== '_' ? `--${x.field}: ${x.message}` : x.message)).join('; ')}\n`);
      return 1;
    }
    if (e instanceof UsageError || String((e as { code?: unknown })?.code ?? '').startsWith('ERR_PARSE_ARGS')) {
      err.write(`error: ${(e as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof ConfigError || e instanceof PluginLoadError || e instanceof AppError || e instanceof StartupError) {
      err.write(`error: ${(e as Error).message}\n`);
      return 1;
    }
    err.write(`error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    return 1;
  }
}

if (process.argv[1]?.endsWith('src/cli.ts')) {
  runCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
    // Let stdout drain when it is a pipe, but never hang on a stray handle.
    setTimeout(() => process.exit(code), 2_000).unref();
  });
}
