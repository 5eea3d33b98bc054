import type { Db, Queryable, Trx } from '../../core/db.ts';
import { inTransaction, isUniqueViolation, rowsByKeys } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventBus } from '../../core/events.ts';
import { publicId } from '../../core/ids.ts';
import { ValidationError, NotFoundError } from '../../core/errors.ts';
import { hashPassword } from '../../core/passwords.ts';
import type { PluginMerchant } from '../../plugin-api.ts';
import { merchantRepository, userRepository, type Merchant, type User } from './repository.ts';
import { changeEmailSchema, settingsSchema, signupSchema, resetPasswordSchema, type SettingsInput, type SignupInput } from './schemas.ts';
import { parseBody } from '../../core/http.ts';
import { teamFunctions } from './team.ts';

export type { Merchant, User };

/** Who a user is, as lists of who-made-what name them. */
export interface UserRef {
  id: string;
  name: string | null;
  email: string;
  role: string;
  removed: boolean;
}

const DEFAULT_BRAND = '#4f46e5';

export interface MerchantServiceDeps {
  db: Db;
  clock: Clock;
  events: EventBus;
}

export function toPluginMerchant(m: Merchant): PluginMerchant {
  return { id: m.id, handle: m.handle, name: m.name, email: m.email, currency: m.currency, timezone: m.timezone, brandColor: m.brandColor };
}

/** The merchant's settings as the settings form names them (what the form shows, and what a save compares). */
export function settingsValues(m: Merchant) {
  return {
    name: m.name,
    handle: m.handle,
    currency: m.currency,
    timezone: m.timezone,
    locale: m.locale,
    brand_color: m.brandColor,
    view_retention_months: m.viewRetentionMonths,
  };
}

/** The merchant as the JSON API shows it. */
export function merchantJson(m: Merchant) {
  return {
    id: m.id,
    object: 'merchant',
    handle: m.handle,
    name: m.name,
    email: m.email,
    currency: m.currency,
    timezone: m.timezone,
    brand_color: m.brandColor,
    /** The pay pages' button (Settings → Payment page; a link may override both). */
    button_style: m.buttonStyle,
    button_label: m.buttonLabel,
    /** The default of `allow_refresh` for new payment requests. */
    request_allow_refresh: m.requestAllowRefresh,
    created_at: m.createdAt.toISOString(),
    updated_at: m.updatedAt.toISOString(),
  };
}

export function createMerchantService({ db, clock, events }: MerchantServiceDeps) {
  const merchants = merchantRepository(db);
  const users = userRepository(db);
  const team = teamFunctions({ db, clock });

  /** One on/off setting saved (and announced as `merchant.updated`) when it changes. */
  async function setSwitch(merchant: Merchant, column: 'send_receipts' | 'request_allow_refresh', current: boolean, on: boolean): Promise<Merchant> {
    if (current === on) return merchant;
    await inTransaction(db, async (trx) => {
      await merchantRepository(trx).update(merchant.key, { [column]: on, updated_at: clock.now() });
      await events.emit(trx, 'merchant.updated', { merchantId: merchant.id, handle: merchant.handle, changed: [column] }, merchant.key);
    });
    return (await merchants.byKey(merchant.key))!;
  }

  return {
    ...team,
    get: (publicIdValue: string) => merchants.byPublicId(publicIdValue),
    getByKey: (key: number) => merchants.byKey(key),
    /** Merchants by key, one query per 500, in `q` (a caller's transaction) when given: for batches that name their merchants. */
    byKeys: (keys: number[], q?: Queryable) => merchants.byKeys(keys, q),
    getByHandle: (handle: string) => merchants.byHandle(handle.toLowerCase()),
    getUser: (publicIdValue: string) => users.byPublicId(publicIdValue),
    getUserByEmail: (email: string) => users.byEmail(email.trim().toLowerCase()),

    /** A merchant's public id by key; `q` is the caller's transaction when inside one. */
    publicIdOf: async (q: Queryable, key: number): Promise<string | null> => (await q('merchants').where({ id: key }).first('public_id'))?.public_id ?? null,
    /** A merchant's key by public id, or null. */
    keyOf: async (publicIdValue: string): Promise<number | null> => {
      const r = await db('merchants').where({ public_id: publicIdValue }).first('id');
      return r ? Number(r.id) : null;
    },
    /** Public ids of these merchants, one query. */
    publicIdsOf: async (keys: number[]): Promise<Map<number, string>> => {
      return rowsByKeys(db, 'merchants', keys, ['public_id'], (r) => String(r.public_id));
    },
    /** Users' public ids, names, emails and roles by key, removed ones too (who created what), one query per batch. */
    userRefsByKeys: async (keys: number[]): Promise<Map<number, UserRef>> =>
      rowsByKeys(db, 'users', keys, ['public_id', 'name', 'email', 'role', 'removed_at'], (r) => ({
        id: String(r.public_id),
        name: r.name ?? null,
        email: String(r.email),
        role: String(r.role),
        removed: r.removed_at !== null && r.removed_at !== undefined,
      })),
    /** Every merchant's view retention (months of raw views kept), for the retention sweep. */
    viewRetention: async (): Promise<{ merchantKey: number; months: number }[]> =>
      (await db('merchants').select('id', 'view_retention_months')).map((r) => ({ merchantKey: Number(r.id), months: Number(r.view_retention_months) })),

    /**
     * Creates a merchant and its owner in one transaction and records merchant.created.
     * Duplicate handle/email → 422 with the message by the field (also when two sign-ups race).
     */
    async signUp(
      raw: unknown,
      opts: {
        currency?: string;
        timezone?: string;
        /** Runs first inside the sign-up's transaction (e.g. spends an invitation); throwing rolls the sign-up back. */
        guard?: (trx: Queryable) => Promise<void>;
      } = {},
    ): Promise<{ merchant: Merchant; user: User }> {
      const input: SignupInput = parseBody(signupSchema, raw);
      const errors = [];
      if (await merchants.handleTaken(input.handle)) errors.push({ field: 'handle', code: 'handle_taken', message: 'That handle is already taken. Try another.' });
      if (await users.emailTaken(input.email)) errors.push({ field: 'email', code: 'email_taken', message: 'An account with this email already exists. Log in instead.' });
      if (errors.length) throw new ValidationError(errors);
      const passwordHash = await hashPassword(input.password);
      const now = clock.now();
      try {
        const merchantKey = await inTransaction(db, async (trx) => {
          if (opts.guard) await opts.guard(trx);
          const merchantPublicId = publicId('mer');
          const merchantKey = await merchantRepository(trx).insert({
            public_id: merchantPublicId,
            handle: input.handle,
            name: input.name,
            email: input.email,
            currency: opts.currency ?? 'EUR',
            timezone: opts.timezone ?? 'UTC',
            brand_color: DEFAULT_BRAND,
            created_at: now,
            updated_at: now,
          });
          await userRepository(trx).insert({
            public_id: publicId('usr'),
            merchant_id: merchantKey,
            email: input.email,
            password_hash: passwordHash,
            role: 'owner',
            created_at: now,
            updated_at: now,
          });
          await events.emit(trx, 'merchant.created', { merchantId: merchantPublicId, handle: input.handle, name: input.name }, merchantKey);
          return merchantKey;
        });
        const merchant = (await merchants.byKey(merchantKey))!;
        const user = (await users.byEmail(input.email))!;
        return { merchant, user };
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        const handleNow = await merchants.handleTaken(input.handle);
        throw new ValidationError([
          handleNow
            ? { field: 'handle', code: 'handle_taken', message: 'That handle is already taken. Try another.' }
            : { field: 'email', code: 'email_taken', message: 'An account with this email already exists. Log in instead.' },
        ]);
      }
    },

    /**
     * Saves the settings form. Leaving `view_retention_months` or `locale` out keeps the current one, so a
     * form rendered before the setting existed (or a caller that only knows the other fields) still
     * saves; a posted but empty or bad value is a validation error like any other field.
     */
    async updateSettings(merchant: Merchant, raw: unknown): Promise<Merchant> {
      const posted = raw && typeof raw === 'object' ? (raw as Record<string, unknown>) : {};
      const kept = { view_retention_months: merchant.viewRetentionMonths, locale: merchant.locale };
      const input: SettingsInput = parseBody(settingsSchema, { ...kept, ...posted });
      if (input.handle !== merchant.handle && (await merchants.handleTaken(input.handle, merchant.key))) {
        throw new ValidationError([{ field: 'handle', code: 'handle_taken', message: 'That handle is already taken. Try another.' }]);
      }
      // The schema keeps only the settings' own fields: the row is the input, column for column.
      const row: Record<string, unknown> = { ...input };
      const before: Record<string, unknown> = settingsValues(merchant);
      const changed = Object.keys(row).filter((k) => before[k] !== row[k]);
      if (!changed.length) return merchant;
      try {
        await inTransaction(db, async (trx) => {
          await merchantRepository(trx).update(merchant.key, { ...row, updated_at: clock.now() });
          await events.emit(trx, 'merchant.updated', { merchantId: merchant.id, handle: input.handle, changed }, merchant.key);
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new ValidationError([{ field: 'handle', code: 'handle_taken', message: 'That handle is already taken. Try another.' }]);
        throw err;
      }
      return (await merchants.byKey(merchant.key))!;
    },

    /**
     * Saves the pay-page look the branding feature decided (button style, label, logo path), checked
     * there; `within` runs first in the same transaction (it stores a new logo's bytes), so the
     * merchant never points at a logo that is not there. Announced as `merchant.updated` (which drops
     * the cached pay pages) when anything changed.
     */
    async updateBranding(merchant: Merchant, change: { button_style?: string; button_label?: string; logo_url?: string | null }, within?: (trx: Trx) => Promise<void>): Promise<Merchant> {
      const before: Record<string, unknown> = { button_style: merchant.buttonStyle, button_label: merchant.buttonLabel, logo_url: merchant.logoUrl };
      const row = Object.fromEntries(Object.entries(change).filter(([k, v]) => v !== undefined && before[k] !== v));
      if (!Object.keys(row).length) return merchant;
      await inTransaction(db, async (trx) => {
        if (within) await within(trx);
        await merchantRepository(trx).update(merchant.key, { ...row, updated_at: clock.now() });
        await events.emit(trx, 'merchant.updated', { merchantId: merchant.id, handle: merchant.handle, changed: Object.keys(row) }, merchant.key);
      });
      return (await merchants.byKey(merchant.key))!;
    },

    /** Turns receipts by email to paying customers on or off. */
    setSendReceipts: (merchant: Merchant, on: boolean) => setSwitch(merchant, 'send_receipts', merchant.sendReceipts, on),

    /** The default of new payment requests: may their customer ask for a new link once one expired. */
    setRequestAllowRefresh: (merchant: Merchant, on: boolean) => setSwitch(merchant, 'request_allow_refresh', merchant.requestAllowRefresh, on),

    /** Whether any account exists yet (the first account of a fresh install is always allowed). */
    async hasAccounts(q: Queryable = db): Promise<boolean> {
      return Boolean(await q('users').first('id'));
    },

    /** Sets a user's password hash (in the caller's transaction when given); other sessions end with the old hash's fingerprint. */
    async setPasswordHash(user: User, passwordHash: string, q: Queryable = db): Promise<void> {
      await userRepository(q).update(user.key, { password_hash: passwordHash, updated_at: clock.now() });
    },

    /**
     * Changes a user's sign-in email (already re-authenticated by the caller) and stores `passwordHash`
     * (the same password hashed afresh, so every other session's fingerprint stops matching). The
     * merchant's contact email follows when it was the same address. Taken → 422 on `email`.
     */
    async changeEmail(user: User, rawEmail: unknown, passwordHash: string): Promise<User> {
      const { email } = parseBody(changeEmailSchema, { email: rawEmail });
      const taken = () => new ValidationError([{ field: 'email', code: 'email_taken', message: 'Another account already uses this email address.' }]);
      if (email === user.email) throw new ValidationError([{ field: 'email', code: 'email_unchanged', message: 'This is already your email address.' }]);
      if (await users.emailTaken(email)) throw taken();
      try {
        await inTransaction(db, async (trx) => {
          const now = clock.now();
          await userRepository(trx).update(user.key, { email, password_hash: passwordHash, updated_at: now });
          const merchant = await merchantRepository(trx).byKey(user.merchantKey);
          if (merchant && merchant.email === user.email) {
            await merchantRepository(trx).update(merchant.key, { email, updated_at: now });
            await events.emit(trx, 'merchant.updated', { merchantId: merchant.id, handle: merchant.handle, changed: ['email'] }, merchant.key);
          }
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw taken();
        throw err;
      }
      return (await users.byPublicId(user.id))!;
    },

    async recordLogin(user: User): Promise<void> {
      await users.update(user.key, { last_login_at: clock.now() });
    },

    async resetPassword(rawEmail: string, rawPassword: string): Promise<User> {
      const { email, password } = parseBody(resetPasswordSchema, { email: rawEmail, password: rawPassword });
      const user = await users.byEmail(email);
      if (!user) throw new NotFoundError(`No user with email ${email}.`);
      await users.update(user.key, { password_hash: await hashPassword(password), updated_at: clock.now() });
      // Sessions carry a fingerprint of the password hash, so this signs the user out everywhere.
      return user;
    },
  };
}

export type MerchantService = ReturnType<typeof createMerchantService>;
