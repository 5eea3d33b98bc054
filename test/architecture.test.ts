// The boundary rule (DESIGN.md "Layout"): a feature is reached only through its
// src/features/<f>/index.ts, only a feature's own files name its tables, core depends on no feature,
// built-in plugins import only the plugin API, and no value-import cycle ties features together.
// The scan reads the source text; `ARCH_PRINT=1 npx mocha test/architecture.test.ts` prints the
// violations found, one per line, in the allow-list's format.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Who owns each table. `core/<file>` owners are the core modules that keep infrastructure tables
 * (the outbox, jobs, sessions, idempotency keys, plugin records).
 */
export const TABLE_OWNERS: Record<string, string> = {
  merchants: 'features/merchants',
  users: 'features/merchants',
  account_tokens: 'features/accounts',
  api_keys: 'features/api-keys',
  products: 'features/products',
  link_items: 'features/links',
  coupons: 'features/coupons',
  coupon_redemptions: 'features/coupons',
  links: 'features/links',
  link_holds: 'features/links',
  payment_requests: 'features/requests',
  request_imports: 'features/requests',
  tags: 'features/tags',
  link_tags: 'features/tags',
  customer_tags: 'features/tags',
  customers: 'features/customers',
  customer_payment_profiles: 'features/customers',
  customer_addresses: 'features/customers',
  checkout_sessions: 'features/checkout',
  payments: 'features/checkout',
  refunds: 'features/checkout',
  subscriptions: 'features/subscriptions',
  merchant_providers: 'features/providers',
  link_views: 'features/analytics',
  link_stats_hourly: 'features/analytics',
  deliveries: 'features/deliveries',
  message_templates: 'features/deliveries',
  reminder_plans: 'features/reminders',
  link_actions: 'features/actions',
  webhook_endpoints: 'features/webhooks',
  webhook_messages: 'features/webhooks',
  webhook_attempts: 'features/webhooks',
  brand_logos: 'features/branding',
  events: 'core/events.ts',
  jobs: 'core/jobs.ts',
  idempotency_keys: 'core/idempotency.ts',
  sessions: 'core/session-store.ts',
  plugins: 'core/plugins',
  plugin_records: 'core/plugins',
};

/**
 * Known violations, each `<kind> <file> -> <target>`. The list may only shrink: an entry that no
 * longer matches a violation fails the test too, so a fixed crossing cannot come back unnoticed.
 */
// Empty, and it stays so: a crossing is fixed by asking the owner for a capability (through its
// index.ts, injected by runtime.ts), never by listing it here.
const ALLOWED = new Set<string>([]);

function walk(dir: string, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(p, out);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const rel = (p: string) => path.relative(ROOT, p).split(path.sep).join('/');

/** `features/links` for src/features/links/…, `core/events.ts` / `core/plugins` for core, else null. */
function unitOf(file: string): string | null {
  const r = rel(file);
  const feature = /^src\/features\/([^/]+)\//.exec(r);
  if (feature) return `features/${feature[1]}`;
  const core = /^src\/core\/([^/]+)/.exec(r);
  if (core) return `core/${core[1]}`;
  return null;
}

interface Import {
  target: string;
  typeOnly: boolean;
}

const IMPORT_RE = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/g;
const DYNAMIC_RE = /import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string, text: string): Import[] {
  const found: Import[] = [];
  for (const m of text.matchAll(IMPORT_RE)) {
    // `import { type A, type B } from` is type-only too.
    const braces = /\{([^}]*)\}/.exec(m[0]);
    const allTypes = !!braces && braces[1].split(',').filter((s) => s.trim()).every((s) => /^\s*type\s/.test(s)) && !/import\s+\w+\s*,/.test(m[0]);
    found.push({ target: m[3], typeOnly: Boolean(m[2]) || allTypes });
  }
  for (const m of text.matchAll(DYNAMIC_RE)) found.push({ target: m[1], typeOnly: false });
  return found
    .filter((i) => i.target.startsWith('.'))
    .map((i) => ({ ...i, target: rel(path.resolve(path.dirname(file), i.target)) }));
}

/** Table names a file uses: knex builders (`db('links')`, `.join('links as l')`) and SQL text. */
function tablesNamedIn(text: string): Set<string> {
  const names = new Set<string>();
  const code = text
    .replace(/^\s*(\/\/|\*|\/\*).*$/gm, '') // comments name tables freely
    .replace(/\b(define|enqueue)\(([^)'"]*)['"][a-z_]+\.[a-z_.]+['"]/g, '$1($2JOB') // job kinds ('links.expire') are not columns
    .replace(/\bkind:\s*['"][a-z_]+\.[a-z_.]+['"]/g, 'kind: JOB');
  for (const table of Object.keys(TABLE_OWNERS)) {
    // knex: db('links'), trx('links as l'), .join('links as l', …), 'links.id'; SQL text: from/join/into/update links.
    const builder = new RegExp(`(?:\\b(?:db|trx|q|knex|tx|conn)|\\.(?:from|join|leftJoin|innerJoin|rightJoin|into|table))\\(\\s*['"\`]${table}(?:\\s+as\\s+\\w+)?['"\`]`);
    const column = new RegExp(`['"\`]${table}\\.[a-z_*]+['"\`]`);
    const helper = new RegExp(`\\browsByKeys\\([^,()]+,\\s*['"\`]${table}['"\`]`); // core/db.ts's batch lookup
    const sql = new RegExp(`\\b(?:from|join|into|update|table)\\s+\`?${table}\`?(?![\\w.])`, 'i');
    if (builder.test(code) || column.test(code) || sql.test(code) || helper.test(code)) names.add(table);
  }
  return names;
}

interface Violation {
  kind: 'import' | 'table' | 'core-imports-feature' | 'plugin-import' | 'cycle';
  file: string;
  target: string;
}

export function scan(): Violation[] {
  const violations: Violation[] = [];
  const featureGraph = new Map<string, Set<string>>();
  const files = [...walk(path.join(ROOT, 'src')), ...walk(path.join(ROOT, 'plugins'))];
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const from = unitOf(file);
    const r = rel(file);
    if (r.startsWith('plugins/')) {
      for (const i of importsOf(file, text)) {
        if (!i.target.startsWith(r.split('/').slice(0, 2).join('/') + '/') && i.target !== 'src/plugin-api.ts' && i.target !== 'src/plugin-testing.ts') {
          violations.push({ kind: 'plugin-import', file: r, target: i.target });
        }
      }
      continue;
    }
    for (const i of importsOf(file, text)) {
      const to = /^src\/features\/([^/]+)\/(.+)$/.exec(i.target);
      if (!to) continue;
      const toUnit = `features/${to[1]}`;
      if (toUnit === from) continue;
      if (from?.startsWith('core/')) violations.push({ kind: 'core-imports-feature', file: r, target: i.target });
      else if (to[2] !== 'index.ts') violations.push({ kind: 'import', file: r, target: i.target });
      if (from?.startsWith('features/') && !i.typeOnly) {
        if (!featureGraph.has(from)) featureGraph.set(from, new Set());
        featureGraph.get(from)!.add(toUnit);
      }
    }
    for (const table of tablesNamedIn(text)) {
      const owner = TABLE_OWNERS[table];
      if (owner === from || (owner.endsWith('.ts') && r === `src/${owner}`)) continue;
      violations.push({ kind: 'table', file: r, target: table });
    }
  }
  for (const cycle of cyclesIn(featureGraph)) violations.push({ kind: 'cycle', file: cycle[0], target: cycle.slice(1).join(' -> ') });
  return violations;
}

/** Each elementary cycle once, reported from its smallest member. */
function cyclesIn(graph: Map<string, Set<string>>): string[][] {
  const cycles = new Map<string, string[]>();
  const visit = (start: string, node: string, trail: string[]) => {
    for (const next of graph.get(node) ?? []) {
      if (next === start) {
        const min = trail.reduce((a, b) => (a < b ? a : b));
        if (min === start) cycles.set(trail.join('>'), [...trail, start]);
      } else if (!trail.includes(next) && next > start && trail.length < 6) {
        visit(start, next, [...trail, next]);
      }
    }
  };
  for (const node of [...graph.keys()].sort()) visit(node, node, [node]);
  return [...cycles.values()];
}

const key = (v: Violation) => `${v.kind} ${v.file} -> ${v.target}`;

describe('architecture', () => {
  const found = scan();
  if (process.env.ARCH_PRINT) console.log([...new Set(found.map(key))].sort().join('\n'));

  it('reaches a feature only through its index.ts, from outside core', () => {
    const bad = found.filter((v) => v.kind === 'import' || v.kind === 'core-imports-feature').map(key).filter((k) => !ALLOWED.has(k));
    expect(bad, 'imports past a feature\'s index.ts (use what its index exports, or add a capability there)').to.deep.equal([]);
  });

  it('names a table only in the feature that owns it', () => {
    const bad = found.filter((v) => v.kind === 'table').map(key).filter((k) => !ALLOWED.has(k));
    expect(bad, 'tables named outside their owner (ask the owner for a capability)').to.deep.equal([]);
  });

  it('lets built-in plugins import only the plugin API', () => {
    const bad = found.filter((v) => v.kind === 'plugin-import').map(key).filter((k) => !ALLOWED.has(k));
    expect(bad).to.deep.equal([]);
  });

  it('has no value-import cycle between features', () => {
    const bad = found.filter((v) => v.kind === 'cycle').map(key).filter((k) => !ALLOWED.has(k));
    expect(bad).to.deep.equal([]);
  });

  it('gives routers the parts of the runtime they use, never the whole Runtime', () => {
    // A feature names what it takes: `Pick<AppDeps, 'links' | 'clock'>` (src/web/deps.ts), not `Runtime`.
    const bad: string[] = [];
    for (const file of walk(path.join(ROOT, 'src/features'))) {
      const code = fs.readFileSync(file, 'utf8').replace(/^\s*(\/\/|\*|\/\*).*$/gm, '');
      if (/\bRuntime\b/.test(code)) bad.push(`${rel(file)}: Runtime`);
      if (/\bAppDeps\b/.test(code.replace(/import type \{ AppDeps \}/g, '').replace(/Pick<AppDeps,/g, ''))) bad.push(`${rel(file)}: AppDeps without Pick`);
    }
    expect(bad).to.deep.equal([]);
  });

  it('keeps src/web to plumbing: it imports no feature but accounts (types aside)', () => {
    const bad: string[] = [];
    for (const file of walk(path.join(ROOT, 'src/web'))) {
      for (const i of importsOf(file, fs.readFileSync(file, 'utf8'))) {
        if (!i.typeOnly && i.target.startsWith('src/features/') && i.target !== 'src/features/accounts/index.ts') bad.push(`${rel(file)} -> ${i.target}`);
      }
    }
    expect(bad).to.deep.equal([]);
  });

  it('knows the owner of every table the migrations create', () => {
    const created = new Set<string>();
    for (const f of fs.readdirSync(path.join(ROOT, 'migrations'))) {
      for (const m of fs.readFileSync(path.join(ROOT, 'migrations', f), 'utf8').matchAll(/createTable\(\s*['"]([a-z_]+)['"]/g)) created.add(m[1]);
    }
    expect(created.size).to.be.greaterThan(10);
    expect([...created].filter((t) => !TABLE_OWNERS[t]), 'add the new table to TABLE_OWNERS').to.deep.equal([]);
  });

  it('keeps the allow-list to violations that still exist', () => {
    const current = new Set(found.map(key));
    expect([...ALLOWED].filter((k) => !current.has(k)), 'fixed crossings: remove them from ALLOWED').to.deep.equal([]);
  });

  it('catches a crossing when one is written', () => {
    // The scanner itself, on text: a deep import, a foreign table, and a cycle.
    const imports = importsOf(path.join(ROOT, 'src/features/links/x.ts'), "import { a } from '../checkout/service.ts';\nimport type { B } from '../tags/index.ts';");
    expect(imports).to.deep.equal([
      { target: 'src/features/checkout/service.ts', typeOnly: false },
      { target: 'src/features/tags/index.ts', typeOnly: true },
    ]);
    expect([...tablesNamedIn("await trx('payments').where(x); const s = `select * from links l join link_tags t`; rowsByKeys(q, 'tags', keys, ['name'], f);")].sort()).to.deep.equal(['link_tags', 'links', 'payments', 'tags']);
    expect([...tablesNamedIn("jobs.define('links.expire', f); jobs.enqueue(trx, 'links.expire', {}); const s = { kind: 'links.expire' };")]).to.deep.equal([]);
    expect([...tablesNamedIn("// the links table\nconst linksCount = 1; log('links updated'); log.child('jobs'); crudRoutes({ path: 'customers' })")]).to.deep.equal([]);
    expect(cyclesIn(new Map([['features/a', new Set(['features/b'])], ['features/b', new Set(['features/a'])]]))).to.deep.equal([['features/a', 'features/b', 'features/a']]);
  });
});
