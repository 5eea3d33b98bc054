import type { Queryable } from '../../core/db.ts';
import { rowsByKeys, toDate, toDateOrNull } from '../../core/db.ts';
import { DEFAULT_LOCALE } from '../../core/time.ts';
import type { Actor } from '../../core/access.ts';

export interface Merchant {
  key: number; // internal integer id; never leaves the server
  id: string; // public id mer_…
  handle: string;
  name: string;
  email: string;
  currency: string;
  timezone: string;
  /** Regional format (BCP 47, one of LOCALES): how dates are written on the dashboard and typed dates are read. */
  locale: string;
  brandColor: string;
  logoUrl: string | null;
  /** How the pay button looks: `rounded`, `square` or `pill` (branding feature). */
  buttonStyle: string;
  /** What the pay button says: `pay`, `buy`, `donate` or `book` (branding feature). */
  buttonLabel: string;
  /** Raw view rows older than this many months are deleted; counters and rollups stay. */
  viewRetentionMonths: number;
  /** Customers get a receipt by email after paying (Settings → Message templates); on by default. */
  sendReceipts: boolean;
  /** New payment requests let their customer ask for a new link once expired, unless a request says otherwise; off by default. */
  requestAllowRefresh: boolean;
  createdAt: Date;
  updatedAt: Date;
  /**
   * Who is acting on the merchant in this request (a team member or an API key), set by the dashboard
   * and API middleware; absent in background work, which acts for the whole merchant.
   */
  actor?: Actor;
}

export interface User {
  key: number;
  id: string;
  merchantKey: number;
  email: string;
  name: string | null;
  passwordHash: string;
  role: string;
  lastLoginAt: Date | null;
  /** An agent's cap on one link or request, in minor units of the merchant's currency (null: none). */
  amountCap: number | null;
  /** A removed member keeps their row (what they made still names them) but can no longer sign in. */
  removedAt: Date | null;
  createdAt: Date;
}

const merchantFrom = (r: any): Merchant => ({
  key: r.id,
  id: r.public_id,
  handle: r.handle,
  name: r.name,
  email: r.email,
  currency: r.currency,
  timezone: r.timezone,
  locale: r.locale ?? DEFAULT_LOCALE,
  brandColor: r.brand_color,
  logoUrl: r.logo_url,
  buttonStyle: r.button_style,
  buttonLabel: r.button_label ?? 'pay',
  viewRetentionMonths: Number(r.view_retention_months),
  sendReceipts: r.send_receipts === undefined || r.send_receipts === null ? true : Boolean(r.send_receipts),
  requestAllowRefresh: Boolean(r.request_allow_refresh),
  createdAt: toDate(r.created_at),
  updatedAt: toDate(r.updated_at),
});

const userFrom = (r: any): User => ({
  key: r.id,
  id: r.public_id,
  merchantKey: r.merchant_id,
  email: r.email,
  name: r.name,
  passwordHash: r.password_hash,
  role: r.role,
  lastLoginAt: toDateOrNull(r.last_login_at),
  amountCap: r.amount_cap === null || r.amount_cap === undefined ? null : Number(r.amount_cap),
  removedAt: toDateOrNull(r.removed_at),
  createdAt: toDate(r.created_at),
});

export function merchantRepository(db: Queryable) {
  return {
    async byKey(key: number): Promise<Merchant | null> {
      const r = await db('merchants').where({ id: key }).first();
      return r ? merchantFrom(r) : null;
    },
    async byKeys(keys: number[], q: Queryable = db): Promise<Map<number, Merchant>> {
      return rowsByKeys(q, 'merchants', keys, '*', merchantFrom);
    },
    async byPublicId(id: string): Promise<Merchant | null> {
      const r = await db('merchants').where({ public_id: id }).first();
      return r ? merchantFrom(r) : null;
    },
    async byHandle(handle: string): Promise<Merchant | null> {
      const r = await db('merchants').where({ handle }).first();
      return r ? merchantFrom(r) : null;
    },
    async handleTaken(handle: string, exceptKey?: number): Promise<boolean> {
      const q = db('merchants').where({ handle });
      if (exceptKey) q.whereNot('id', exceptKey);
      return Boolean(await q.first('id'));
    },
    async insert(row: Record<string, unknown>): Promise<number> {
      const [id] = await db('merchants').insert(row);
      return Number(id);
    },
    async update(key: number, row: Record<string, unknown>): Promise<void> {
      await db('merchants').where({ id: key }).update(row);
    },
  };
}

export function userRepository(db: Queryable) {
  return {
    async byEmail(email: string): Promise<User | null> {
      const r = await db('users').where({ email }).whereNull('removed_at').first();
      return r ? userFrom(r) : null;
    },
    async byPublicId(id: string): Promise<User | null> {
      const r = await db('users').where({ public_id: id }).whereNull('removed_at').first();
      return r ? userFrom(r) : null;
    },
    /** The merchant's current members, owners first, then by when they joined. */
    async members(merchantKey: number): Promise<User[]> {
      const rows = await db('users').where({ merchant_id: merchantKey }).whereNull('removed_at').orderByRaw("case role when 'owner' then 0 when 'admin' then 1 when 'agent' then 2 else 3 end").orderBy('id');
      return rows.map(userFrom);
    },
    async member(merchantKey: number, id: string): Promise<User | null> {
      const r = await db('users').where({ merchant_id: merchantKey, public_id: id }).whereNull('removed_at').first();
      return r ? userFrom(r) : null;
    },
    async emailTaken(email: string): Promise<boolean> {
      return Boolean(await db('users').where({ email }).first('id'));
    },
    async insert(row: Record<string, unknown>): Promise<number> {
      const [id] = await db('users').insert(row);
      return Number(id);
    },
    async update(key: number, row: Record<string, unknown>): Promise<void> {
      await db('users').where({ id: key }).update(row);
    },
  };
}
