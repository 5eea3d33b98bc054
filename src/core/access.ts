/**
 * Who may do what: the roles of team members and API keys, what each role may do (one capability
 * table), which capability each dashboard and API route needs (one rule table each, checked by one
 * middleware before any section's router), and which records an actor sees.
 *
 * - owner: everything, and only an owner makes or unmakes owners.
 * - admin: everything but making or unmaking owners.
 * - agent: creates and sends links and payment requests up to their amount cap, adds customers; sees
 *   only what they made; no settings, API keys, exports, reports, team, imports or refunds.
 * - viewer: reads everything (exports included), changes nothing but their own sign-in.
 *
 * The rules deny by default: a dashboard POST or an API write that no rule names needs
 * `settings.manage`, so a new route is closed to agents and viewers until it is given its capability.
 */
import type { Knex } from 'knex';
import { AppError } from './errors.ts';
import { formatMoney } from './money.ts';

export const ROLES = ['owner', 'admin', 'agent', 'viewer'] as const;
export type Role = (typeof ROLES)[number];
/** An API key acts as a person would, but is never an owner (it cannot manage the team anyway). */
export const KEY_ROLES = ['admin', 'agent', 'viewer'] as const;
export type KeyRole = (typeof KEY_ROLES)[number];

export const ROLE_LABELS: Record<Role, string> = { owner: 'Owner', admin: 'Admin', agent: 'Agent', viewer: 'Viewer' };
export const ROLE_HELP: Record<Role, string> = {
  owner: 'Everything, including the team and its owners.',
  admin: 'Everything except making or removing owners.',
  agent: 'Creates and sends links and payment requests up to their cap; sees only their own.',
  viewer: 'Reads everything, changes nothing.',
};

export const CAPABILITIES = [
  /** See every member's and key's links, requests, customers and payments (without it: only one's own). */
  'records.read_all',
  /** Create, edit, send, duplicate, (de)activate and delete links (an agent: their own, up to their cap). */
  'link.write',
  /** Create and cancel payment requests, Text-to-Pay (an agent: their own, up to their cap). */
  'request.write',
  /** Add and edit customers (an agent: their own). */
  'customer.write',
  /** Delete customers; import customers and payment requests from CSV. */
  'records.manage',
  /** Products and tags. */
  'catalog.manage',
  'refund.create',
  /** Reports, the activity feed, the home page's money figures. */
  'reports.read',
  /** CSV downloads. */
  'exports.download',
  /** Settings, payment providers, message templates, webhooks, plugins. */
  'settings.manage',
  'api_key.manage',
  'team.manage',
  /** Make someone an owner, or change or remove an owner. */
  'owners.manage',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

const ALL: readonly Capability[] = CAPABILITIES;
const GRANTS: Record<Role, ReadonlySet<Capability>> = {
  owner: new Set(ALL),
  admin: new Set(ALL.filter((c) => c !== 'owners.manage')),
  agent: new Set<Capability>(['link.write', 'request.write', 'customer.write']),
  viewer: new Set<Capability>(['records.read_all', 'reports.read', 'exports.download']),
};

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

/** The one permission check. An unknown role (a row written by a newer version) may do nothing. */
export function can(role: string, capability: Capability): boolean {
  return isRole(role) && GRANTS[role].has(capability);
}

/** Who is acting: a signed-in member or an API key, with their role and cap. */
export interface Actor {
  role: Role;
  /** The team member (dashboard), else null. */
  userKey: number | null;
  /** The API key, else null. */
  apiKeyKey: number | null;
  /** The most one link or request may ask for, in minor units of the merchant's currency; null: no cap. */
  amountCap: number | null;
}

/** The records an actor made: what one without `records.read_all` is limited to. */
export interface OwnScope {
  userKey: number | null;
  apiKeyKey: number | null;
}

/** Null when the actor sees every record; else the records they may see are those they made. */
export function ownScope(actor: Actor | null | undefined): OwnScope | null {
  if (!actor || can(actor.role, 'records.read_all')) return null;
  return { userKey: actor.userKey, apiKeyKey: actor.apiKeyKey };
}

/**
 * Narrows a query to the records `only` made (nothing when it names nobody). `columns` are the
 * table's creator columns as the query names them.
 */
export function whereMadeBy(q: Knex.QueryBuilder, only: OwnScope | null | undefined, columns: { user: string; key: string }): Knex.QueryBuilder {
  if (!only) return q;
  if (only.userKey !== null) return q.andWhere(columns.user, only.userKey);
  if (only.apiKeyKey !== null) return q.andWhere(columns.key, only.apiKeyKey);
  return q.andWhereRaw('1 = 0');
}

/** Whether a record with these creators is within `only`. */
export function madeBy(only: OwnScope | null | undefined, record: { userKey: number | null; apiKeyKey: number | null }): boolean {
  if (!only) return true;
  if (only.userKey !== null) return record.userKey === only.userKey;
  return only.apiKeyKey !== null && record.apiKeyKey === only.apiKeyKey;
}

export class ForbiddenError extends AppError {
  constructor(code: string, message: string) {
    super(code, 403, message);
  }
}

const NOT_ALLOWED: Record<Capability, string> = {
  'records.read_all': 'Your role shows only what you created.',
  'link.write': 'Your role can look at links but not create or change them.',
  'request.write': 'Your role can look at payment requests but not create or change them.',
  'customer.write': 'Your role can look at customers but not add or change them.',
  'records.manage': 'Only owners and admins can delete customers or import from CSV files.',
  'catalog.manage': 'Only owners and admins can change products and tags.',
  'refund.create': 'Only owners and admins can refund payments.',
  'reports.read': 'Your role does not include reports or the activity of the whole account.',
  'exports.download': 'Your role does not include downloading exports.',
  'settings.manage': 'Only owners and admins can change settings.',
  'api_key.manage': 'Only owners and admins can manage API keys.',
  'team.manage': 'Only owners and admins can manage the team.',
  'owners.manage': 'Only an owner can make someone an owner or change an owner.',
};

/** The 403 for a missing capability: code `forbidden`, a sentence saying what the role lacks. */
export function forbidden(capability: Capability): ForbiddenError {
  return new ForbiddenError('forbidden', `${NOT_ALLOWED[capability]} Ask an owner or admin of this account if you need it.`);
}

export function requireCan(actor: Actor | null | undefined, capability: Capability): void {
  if (!actor || !can(actor.role, capability)) throw forbidden(capability);
}

/**
 * An agent's cap on one link or request: over it, or in another currency than the one the cap is
 * set in (the merchant's), is a 403 `amount_over_cap` naming the cap.
 */
export function checkAmountCap(actor: Actor | null | undefined, amount: number, currency: string, capCurrency: string): void {
  const cap = actor?.amountCap ?? null;
  if (cap === null) return;
  const capText = formatMoney(cap, capCurrency);
  if (currency.toUpperCase() !== capCurrency.toUpperCase()) {
    throw new ForbiddenError('amount_over_cap', `Your role can ask for amounts in ${capCurrency} only (up to ${capText} each). Ask an owner or admin to create this one.`);
  }
  if (amount > cap) {
    throw new ForbiddenError('amount_over_cap', `${formatMoney(amount, currency)} is over your limit of ${capText} per link or request. Ask an owner or admin to raise your limit or to create this one.`);
  }
}

/** The message of an amount over the actor's cap (forms show it by the amount field, with 403), else null. */
export function overCapMessage(err: unknown): string | null {
  return err instanceof ForbiddenError && err.code === 'amount_over_cap' ? err.userMessage : null;
}

type Rule = [method: string, path: RegExp, capability: Capability | null];

/**
 * The dashboard's routes (paths under /app) and what each needs. First match wins; `null` = anyone
 * signed in. Reads not listed are open to every role (their records are narrowed by ownScope).
 */
const DASHBOARD_RULES: Rule[] = [
  // Everyone manages their own sign-in.
  ['*', /^\/settings\/(password|email)$/, null],
  ['*', /^\/settings\/team(\/|$)/, 'team.manage'],
  ['*', /^\/settings\/api-keys(\/|$)/, 'api_key.manage'],
  // Settings shows each role what it may use (for most, just their own sign-in).
  ['GET', /^\/settings$/, null],
  ['GET', /^\/p(\/|$)/, 'records.read_all'],
  ['*', /^\/(settings|plugins|p)(\/|$)/, 'settings.manage'],
  ['*', /^\/reports(\/|$)/, 'reports.read'],
  ['GET', /^\/activity$/, 'reports.read'],
  ['GET', /\.csv$/, 'exports.download'],
  ['*', /^\/(customers|requests)\/import(\/|$)/, 'records.manage'],
  ['GET', /^\/requests\/imports\//, 'records.manage'],
  ['POST', /^\/payments\/[^/]+\/(refunds?|outcome)$/, 'refund.create'],
  // Subscriptions are the merchant's (not one member's): reading needs every record, canceling stops money.
  ['*', /^\/subscriptions\/[^/]+\/cancel$/, 'refund.create'],
  ['GET', /^\/subscriptions(\/|$)/, 'records.read_all'],
  ['POST', /^\/(products|tags|coupons)(\/|$)/, 'catalog.manage'],
  ['GET', /^\/coupons\/(new|[^/]+\/(edit|delete))$/, 'catalog.manage'],
  ['POST', /^\/customers\/[^/]+\/delete$/, 'records.manage'],
  ['GET', /^\/customers\/[^/]+\/delete$/, 'records.manage'],
  ['POST', /^\/customers\/[^/]+\/text-to-pay$/, 'request.write'],
  ['*', /^\/customers\/new$/, 'customer.write'],
  ['GET', /^\/customers\/[^/]+\/edit$/, 'customer.write'],
  ['POST', /^\/customers(\/|$)/, 'customer.write'],
  ['*', /^\/requests\/new$/, 'request.write'],
  ['*', /^\/requests\/[^/]+\/cancel$/, 'request.write'],
  ['POST', /^\/requests(\/|$)/, 'request.write'],
  ['GET', /^\/links\/(new|send-options|after-payment)$/, 'link.write'],
  ['GET', /^\/links\/[^/]+\/(edit|delete|send)$/, 'link.write'],
  ['POST', /^\/(links|deliveries|reminder_plans)(\/|$)/, 'link.write'],
  ['GET', /./, null],
  ['HEAD', /./, null],
  // Anything else that changes something: owners and admins only, until given its own rule.
  ['*', /./, 'settings.manage'],
];

/** The JSON API's routes (paths under /api/v1) and what each needs. */
const API_RULES: Rule[] = [
  ['GET', /^\/me$/, null],
  ['*', /^\/(webhook_endpoints|providers)(\/|$)/, 'settings.manage'],
  ['*', /^\/reports(\/|$)/, 'reports.read'],
  ['POST', /^\/payments\/[^/]+\/(refunds|outcome)$/, 'refund.create'],
  ['POST', /^\/subscriptions\/[^/]+\/cancel$/, 'refund.create'],
  ['GET', /^\/subscriptions(\/|$)/, 'records.read_all'],
  ['*', /^\/(products|tags|coupons)(\/|$)/, 'catalog.manage'],
  ['DELETE', /^\/customers\/[^/]+$/, 'records.manage'],
  ['POST', /^\/customers\/[^/]+\/(payment_requests|text_to_pay)$/, 'request.write'],
  ['*', /^\/customers(\/|$)/, 'customer.write'],
  ['*', /^\/payment_requests(\/|$)/, 'request.write'],
  ['*', /^\/(links|deliveries|reminder_plans)(\/|$)/, 'link.write'],
  ['*', /./, 'settings.manage'],
];
// Reads of products and tags stay open (an agent picks a product or a tag); only writes are managed.
API_RULES.unshift(['GET', /^\/(products|tags|coupons|customers|payment_requests|links|payments)(\/|$)/, null]);

/** The capability a request needs (null: anyone signed in / any key), by surface, method and path. */
export function capabilityFor(surface: 'dashboard' | 'api', method: string, path: string): Capability | null {
  const rules = surface === 'dashboard' ? DASHBOARD_RULES : API_RULES;
  const m = method.toUpperCase();
  for (const [method, re, capability] of rules) {
    if ((method === '*' || method === m) && re.test(path)) return capability;
  }
  return 'settings.manage';
}
