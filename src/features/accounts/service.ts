/**
 * Account tokens and the account changes they allow: password reset links (30 minutes) and sign-up
 * invitations (7 days). A token is 32 random bytes (base64url); only its HMAC under a derived key is
 * stored, so neither a guess nor a copy of the database opens an account, and a token altered by a
 * single character matches nothing. A token is spent by one conditional UPDATE (`used_at IS NULL AND
 * expires_at > now`): of any number of parallel submits exactly one succeeds.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { Db, Queryable, Trx } from '../../core/db.ts';
import { inTransaction, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { AppError, NotFoundError, ValidationError, type FieldError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { hashPassword, verifyPassword } from '../../core/passwords.ts';
import { z } from 'zod';
import { emailSchema, memberName, parseCap, parseRole, passwordSchema, type Merchant, type MerchantService, type User } from '../merchants/index.ts';
import { can, forbidden, type Role } from '../../core/access.ts';
import type { MerchantNotice } from '../deliveries/index.ts';

export const RESET_TTL_MS = 30 * 60_000;
export const INVITE_TTL_MS = 7 * 86_400_000;

type Purpose = 'password_reset' | 'signup_invite' | 'team_invite';

/** A team invitation not yet accepted nor revoked (Settings → Team lists them). */
export interface PendingInvite {
  key: number;
  email: string;
  role: Role;
  amountCap: number | null;
  invitedBy: number | null;
  createdAt: Date;
  expiresAt: Date;
  expired: boolean;
}

/** Why a token does not open its page. */
export type TokenProblem = 'invalid' | 'expired' | 'used';

export class TokenError extends AppError {
  constructor(readonly problem: TokenProblem, message: string) {
    super('token_' + problem, 410, message);
  }
}

export interface AccountServiceDeps {
  db: Db;
  clock: Clock;
  /** A key derived for account tokens (secrets.derive('account-tokens')). */
  key: Buffer;
  baseUrl: string;
  merchants: Pick<MerchantService, 'getUserByEmail' | 'getUser' | 'getByKey' | 'setPasswordHash' | 'changeEmail' | 'hasAccounts' | 'signUp' | 'join'>;
  /** Emails the merchant's user (deliveries' notifyMerchant), from the caller's transaction. */
  notifyMerchant: (trx: Trx, notice: MerchantNotice) => Promise<void>;
}

const newPasswordSchema = z.object({ password: passwordSchema });

/** What a team invitation carries besides its email. */
interface TeamInviteFields {
  merchantKey: number;
  role: Role;
  amountCap: number | null;
  invitedBy: number;
}

export function createAccountService(deps: AccountServiceDeps) {
  const { db, clock, merchants } = deps;
  const hashOf = (purpose: Purpose, token: string) => createHmac('sha256', deps.key).update(`${purpose}:${token}`).digest('hex');

  async function issue(q: Queryable, purpose: Purpose, email: string, userKey: number | null, ttlMs: number, team?: TeamInviteFields): Promise<{ token: string; key: number; expiresAt: Date }> {
    const token = randomBytes(32).toString('base64url');
    const now = clock.now();
    const expiresAt = new Date(now.getTime() + ttlMs);
    const [key] = await q('account_tokens').insert({
      purpose,
      token_hash: hashOf(purpose, token),
      email,
      user_id: userKey,
      ...(team ? { merchant_id: team.merchantKey, role: team.role, amount_cap: team.amountCap, invited_by_user_id: team.invitedBy } : {}),
      expires_at: expiresAt,
      used_at: null,
      created_at: now,
    });
    return { token, key: Number(key), expiresAt };
  }

  /** The token's row when it can still be used; else a TokenError saying why. */
  async function find(purpose: Purpose, token: unknown, q: Queryable = db): Promise<{ key: number; email: string; userKey: number | null; expiresAt: Date; row: Record<string, any> }> {
    const what = purpose === 'password_reset' ? 'password reset link' : 'invitation';
    if (typeof token !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(token)) throw new TokenError('invalid', `This ${what} is not valid. Check that you opened the whole link from the email.`);
    const r = await q('account_tokens').where({ purpose, token_hash: hashOf(purpose, token) }).first();
    if (!r) throw new TokenError('invalid', `This ${what} is not valid. Check that you opened the whole link from the email.`);
    if (toDateOrNull(r.used_at)) throw new TokenError('used', `This ${what} has already been used.`);
    if (toDate(r.expires_at).getTime() <= clock.now().getTime()) throw new TokenError('expired', `This ${what} has expired.`);
    return { key: Number(r.id), email: String(r.email), userKey: r.user_id === null ? null : Number(r.user_id), expiresAt: toDate(r.expires_at), row: r };
  }

  /** Spends the token in `q`: true for exactly one caller, however many race. */
  async function spend(q: Queryable, key: number): Promise<boolean> {
    const now = clock.now();
    const n = await q('account_tokens').where({ id: key }).whereNull('used_at').where('expires_at', '>', now).update({ used_at: now });
    return Number(n) === 1;
  }

  /** Checks `current` against the user's password; wrong → 422 on `current_password`. */
  async function reauthenticate(user: User, current: unknown): Promise<void> {
    const ok = typeof current === 'string' && current.length > 0 && (await verifyPassword(user.passwordHash, current));
    if (!ok) throw new ValidationError([{ field: 'current_password', code: 'wrong_password', message: typeof current === 'string' && current ? 'That is not your current password.' : 'Enter your current password.' }]);
  }

  const pendingFrom = (r: any): PendingInvite => ({
    key: Number(r.id),
    email: String(r.email),
    role: r.role as Role,
    amountCap: r.amount_cap === null || r.amount_cap === undefined ? null : Number(r.amount_cap),
    invitedBy: r.invited_by_user_id === null || r.invited_by_user_id === undefined ? null : Number(r.invited_by_user_id),
    createdAt: toDate(r.created_at),
    expiresAt: toDate(r.expires_at),
    expired: toDate(r.expires_at).getTime() <= clock.now().getTime(),
  });
  const pendingQuery = (merchantKey: number) => db('account_tokens').where({ purpose: 'team_invite', merchant_id: merchantKey }).whereNull('used_at');
  /** Sends the invitation email (from the caller's transaction: it goes once the invitation is stored). */
  const mailInvite = (trx: Trx, merchant: Merchant, by: User, invite: { key: number; email: string; role: Role; token: string }) =>
    deps.notifyMerchant(trx, {
      merchantKey: merchant.key,
      key: `team-invite:${invite.key}`,
      to: invite.email,
      subject: `${memberName(by)} invited you to ${merchant.name} on Paylink`,
      text:
        `${memberName(by)} invited you to join ${merchant.name} on Paylink as ${invite.role === 'admin' || invite.role === 'agent' || invite.role === 'owner' ? 'an' : 'a'} ${invite.role}.\n\n` +
        `Accept here and choose your name and password (the link works once, for 7 days):\n${deps.baseUrl}/signup/join/${invite.token}\n\n` +
        `If you did not expect this, ignore this email: nothing happens without you.`,
    });

  return {
    /**
     * Invites `email` to the merchant's team as `role` (an agent with an optional cap). 422 by field
     * for a bad email, role or cap, or an address that has an account already; 403 when someone who
     * is not an owner invites an owner. An earlier pending invitation of the same address is replaced.
     */
    async inviteMember(merchant: Merchant, by: User, raw: Record<string, unknown>): Promise<PendingInvite & { url: string }> {
      const errors: FieldError[] = [];
      let email = '';
      let role = 'agent' as Role;
      let cap: number | null = null;
      const attempt = (f: () => void) => {
        try {
          f();
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err;
          errors.push(...err.errors);
        }
      };
      attempt(() => void (email = parseBody(z.object({ email: emailSchema }), { email: raw.email }).email));
      attempt(() => void (role = parseRole(raw.role)));
      attempt(() => void (cap = parseCap(raw.amount_cap, merchant.currency)));
      if (!errors.length) {
        const existing = await merchants.getUserByEmail(email);
        if (existing) errors.push({ field: 'email', code: 'email_taken', message: existing.merchantKey === merchant.key ? 'This person is already on your team.' : 'This address already has a Paylink account. Invite another address of theirs.' });
      }
      if (errors.length) throw new ValidationError(errors);
      if (role === 'owner' && !can(by.role, 'owners.manage')) throw forbidden('owners.manage');
      const invite = await inTransaction(db, async (trx) => {
        // One pending invitation per address: a new one replaces the old.
        await trx('account_tokens').where({ purpose: 'team_invite', merchant_id: merchant.key, email }).whereNull('used_at').update({ used_at: clock.now() });
        const issued = await issue(trx, 'team_invite', email, null, INVITE_TTL_MS, { merchantKey: merchant.key, role, amountCap: role === 'agent' ? cap : null, invitedBy: by.key });
        await mailInvite(trx, merchant, by, { key: issued.key, email, role, token: issued.token });
        return issued;
      });
      const row = await db('account_tokens').where({ id: invite.key }).first();
      return { ...pendingFrom(row), url: `${deps.baseUrl}/signup/join/${invite.token}` };
    },

    /** The merchant's invitations not yet accepted or revoked (expired ones too, to resend), newest first. */
    async pendingInvites(merchantKey: number): Promise<PendingInvite[]> {
      return (await pendingQuery(merchantKey).orderBy('id', 'desc')).map(pendingFrom);
    },

    /** A fresh link (7 days again) for a pending invitation, by email; the old link stops working. */
    async resendInvite(merchant: Merchant, by: User, inviteKey: number): Promise<PendingInvite & { url: string }> {
      const row = await pendingQuery(merchant.key).andWhere({ id: inviteKey }).first();
      if (!row) throw new NotFoundError('This invitation was accepted or revoked already.');
      const old = pendingFrom(row);
      if (old.role === 'owner' && !can(by.role, 'owners.manage')) throw forbidden('owners.manage');
      const issued = await inTransaction(db, async (trx) => {
        if (!(await spend(trx, old.key)) && !old.expired) throw new NotFoundError('This invitation was accepted or revoked already.');
        await trx('account_tokens').where({ id: old.key }).whereNull('used_at').update({ used_at: clock.now() });
        const next = await issue(trx, 'team_invite', old.email, null, INVITE_TTL_MS, { merchantKey: merchant.key, role: old.role, amountCap: old.amountCap, invitedBy: by.key });
        await mailInvite(trx, merchant, by, { key: next.key, email: old.email, role: old.role, token: next.token });
        return next;
      });
      return { ...pendingFrom(await db('account_tokens').where({ id: issued.key }).first()), url: `${deps.baseUrl}/signup/join/${issued.token}` };
    },

    /** Withdraws a pending invitation: its link stops working. */
    async revokeInvite(merchant: Merchant, by: User, inviteKey: number): Promise<PendingInvite> {
      const row = await pendingQuery(merchant.key).andWhere({ id: inviteKey }).first();
      if (!row) throw new NotFoundError('This invitation was accepted or revoked already.');
      const invite = pendingFrom(row);
      if (invite.role === 'owner' && !can(by.role, 'owners.manage')) throw forbidden('owners.manage');
      await db('account_tokens').where({ id: invite.key }).whereNull('used_at').update({ used_at: clock.now() });
      return invite;
    },

    /** What a team invitation offers (the join page): the merchant, the role, the email; a TokenError when it cannot be used. */
    async teamInvitation(token: unknown): Promise<{ email: string; role: Role; merchant: Merchant }> {
      const found = await find('team_invite', token);
      const merchant = found.row.merchant_id ? await merchants.getByKey(Number(found.row.merchant_id)) : null;
      if (!merchant) throw new TokenError('invalid', 'This invitation is no longer valid.');
      return { email: found.email, role: found.row.role as Role, merchant };
    },

    /**
     * Accepts a team invitation: a new member of the inviting merchant, with the invited email, role
     * and cap and the name and password chosen here. The invitation is spent in the same transaction
     * (a failed join keeps it; two racing joins make one member).
     */
    async joinTeam(token: unknown, raw: unknown): Promise<{ user: User; merchant: Merchant }> {
      const found = await find('team_invite', token);
      const merchant = found.row.merchant_id ? await merchants.getByKey(Number(found.row.merchant_id)) : null;
      if (!merchant) throw new TokenError('invalid', 'This invitation is no longer valid.');
      const invite = pendingFrom(found.row);
      const user = await merchants.join(merchant, { email: invite.email, role: invite.role, amountCap: invite.amountCap }, raw, async (trx) => {
        if (!(await spend(trx, found.key))) throw new TokenError('used', 'This invitation has already been used.');
      });
      return { user, merchant };
    },

    /** An invitation to sign up with `email`, valid 7 days (the CLI's `invite`). */
    async createInvitation(rawEmail: unknown): Promise<{ email: string; url: string; expiresAt: Date }> {
      const { email } = parseBody(z.object({ email: emailSchema }), { email: rawEmail });
      const { token, expiresAt } = await issue(db, 'signup_invite', email, null, INVITE_TTL_MS);
      return { email, url: `${deps.baseUrl}/signup?invite=${token}`, expiresAt };
    },

    /** The invitation a token stands for (its email), or a TokenError. */
    invitation: async (token: unknown) => ({ email: (await find('signup_invite', token)).email }),

    /**
     * Signs up with an invitation: the account gets the invited email, and the invitation is spent in
     * the sign-up's transaction (a sign-up that fails keeps it; two that race → one account).
     */
    async signUpInvited(token: unknown, raw: Record<string, unknown>) {
      const invite = await find('signup_invite', token);
      return merchants.signUp({ ...raw, email: invite.email }, {
        guard: async (trx) => {
          if (!(await spend(trx, invite.key))) throw new TokenError('used', 'This invitation has already been used.');
        },
      });
    },

    /**
     * Emails a reset link when an account has this address; says nothing either way (the caller
     * answers the same for every address). A bad address is simply nobody's.
     */
    async requestPasswordReset(rawEmail: unknown): Promise<void> {
      const parsed = emailSchema.safeParse(rawEmail);
      if (!parsed.success) return;
      const user = await merchants.getUserByEmail(parsed.data);
      if (!user) return;
      await inTransaction(db, async (trx) => {
        const { token, key } = await issue(trx, 'password_reset', user.email, user.key, RESET_TTL_MS);
        const url = `${deps.baseUrl}/password/reset/${token}`;
        await deps.notifyMerchant(trx, {
          merchantKey: user.merchantKey,
          key: `password-reset:${key}`,
          to: user.email,
          subject: 'Reset your Paylink password',
          text:
            `Someone (hopefully you) asked to reset the password of your Paylink account ${user.email}.\n\n` +
            `Choose a new password here (the link works once, for 30 minutes):\n${url}\n\n` +
            `If you did not ask for this, ignore this email: your password stays as it is.`,
        });
      });
    },

    /** Checks a reset token without spending it (the reset page); a TokenError when it cannot be used. */
    checkResetToken: async (token: unknown): Promise<void> => {
      await find('password_reset', token);
    },

    /**
     * Sets a new password with a reset token: the password is checked first (422 keeps the token), then
     * the token is spent and the password stored in one transaction. Every session of the user ends
     * (their fingerprint was of the old hash); the caller signs this browser in.
     */
    async resetPassword(token: unknown, raw: unknown): Promise<User> {
      const { password } = parseBody(newPasswordSchema, raw);
      const found = await find('password_reset', token);
      const user = found.userKey === null ? null : await merchants.getUserByEmail(found.email);
      if (!user || user.key !== found.userKey) throw new TokenError('invalid', 'This password reset link is no longer valid.');
      const hash = await hashPassword(password);
      await inTransaction(db, async (trx) => {
        if (!(await spend(trx, found.key))) throw new TokenError('used', 'This password reset link has already been used.');
        await merchants.setPasswordHash(user, hash, trx);
        // Any other reset link of this user dies with it.
        await trx('account_tokens').where({ purpose: 'password_reset', user_id: user.key }).whereNull('used_at').update({ used_at: clock.now() });
      });
      return (await merchants.getUser(user.id))!;
    },

    /** Settings → change password: the current password (422 `current_password`), the same rules as sign-up (422 `password`). */
    async changePassword(user: User, raw: Record<string, unknown>): Promise<User> {
      const errors: ValidationError[] = [];
      const attempt = async (f: () => Promise<unknown>) => {
        try {
          await f();
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err;
          errors.push(err);
        }
      };
      let password = '';
      await attempt(() => reauthenticate(user, raw.current_password));
      await attempt(async () => {
        password = parseBody(newPasswordSchema, { password: raw.password }).password;
      });
      if (errors.length) throw new ValidationError(errors.flatMap((e) => e.errors));
      await merchants.setPasswordHash(user, await hashPassword(password));
      return (await merchants.getUser(user.id))!;
    },

    /** Settings → change email: the current password, a free address; every other session ends. */
    async changeEmail(user: User, raw: Record<string, unknown>): Promise<User> {
      const emailCheck = emailSchema.safeParse(raw.email);
      try {
        await reauthenticate(user, raw.current_password);
      } catch (err) {
        if (err instanceof ValidationError && !emailCheck.success) {
          throw new ValidationError([...err.errors, { field: 'email', code: 'invalid', message: emailCheck.error.issues[0]?.message ?? 'Enter a valid email address.' }]);
        }
        throw err;
      }
      // The same password hashed afresh: a new fingerprint, so every other session ends.
      return merchants.changeEmail(user, raw.email, await hashPassword(String(raw.current_password)));
    },

    /** Whether a sign-up may go ahead without an invitation (policy `open`, or the first account of a fresh install). */
    signUpWithoutInvitation: async (policy: 'open' | 'invite' | 'closed'): Promise<boolean> => policy === 'open' || !(await merchants.hasAccounts()),
  };
}

export type AccountService = ReturnType<typeof createAccountService>;
