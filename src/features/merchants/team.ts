/**
 * A merchant's team: its users, each with a role (core/access.ts) and, for agents, a cap on one link
 * or request. Rules kept here, whoever asks (dashboard, CLI, tests):
 * - there is always at least one owner: the last owner can be neither demoted nor removed;
 * - only an owner makes someone an owner, or changes or removes an owner;
 * - a removed member keeps their row (their links and requests still name them) but no longer signs
 *   in, and their email address is free again (for an invitation, or a sign-up elsewhere).
 * The owner count is read with the merchant's row locked (MySQL), or under SQLite's single writer,
 * so two owners demoting each other at once cannot leave the merchant with none.
 */
import { z } from 'zod';
import type { Db, Trx } from '../../core/db.ts';
import { inTransaction, isMysql, isUniqueViolation } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { publicId } from '../../core/ids.ts';
import { ConflictError, NotFoundError, ValidationError, type FieldError } from '../../core/errors.ts';
import { ROLES, can, forbidden, isRole, type Role } from '../../core/access.ts';
import { formatMoney, parseDecimalAmount, toDecimalString } from '../../core/money.ts';
import { hashPassword } from '../../core/passwords.ts';
import { parseBody } from '../../core/http.ts';
import { userRepository, type Merchant, type User } from './repository.ts';
import { passwordSchema } from './schemas.ts';

const personNameSchema = z
  .string({ error: 'Enter your name.' })
  .trim()
  .min(1, 'Enter your name.')
  .max(120, 'Keep your name under 120 characters.')
  .refine((s) => !/[\u0000-\u001f\u007f\u2028\u2029]/.test(s), 'Your name cannot contain line breaks or control characters.');

const joinSchema = z.object({ name: personNameSchema, password: passwordSchema });

/** A member as people read them: their name, else their email. */
export function memberName(u: { name: string | null; email: string }): string {
  return u.name || u.email;
}

/**
 * A role from a form or the API: one of `allowed` (422 on `field` otherwise, listing them). Used for
 * members (every role) and API keys (no owner).
 */
export function parseRole(raw: unknown, allowed: readonly Role[] = ROLES, field = 'role'): Role {
  if (isRole(raw) && allowed.includes(raw)) return raw;
  throw new ValidationError([{ field, code: 'invalid_role', message: `Choose a role: ${allowed.join(', ')}.` }]);
}

/**
 * An agent's cap as typed ("250" or "250.00" in the merchant's currency; empty: no cap) → minor
 * units, or 422 on `field`.
 */
export function parseCap(raw: unknown, currency: string, field = 'amount_cap'): number | null {
  const text = typeof raw === 'number' ? toDecimalString(raw, currency) : typeof raw === 'string' ? raw.trim() : raw === undefined || raw === null ? '' : null;
  if (text === null) throw new ValidationError([{ field, code: 'invalid_amount', message: `Enter the cap as an amount in ${currency}, such as 250.00, or leave it empty for no cap.` }]);
  if (!text) return null;
  const parsed = parseDecimalAmount(text, currency);
  if (!parsed.ok) throw new ValidationError([{ field, code: parsed.code, message: `${parsed.message} (The cap is an amount in ${currency}, such as 250.00, or empty for no cap.)` }]);
  if (parsed.minor < 1) throw new ValidationError([{ field, code: 'invalid_amount', message: 'A cap must be more than zero (leave it empty for no cap).' }]);
  return parsed.minor;
}

/** "€250.00" or "No cap". */
export function capText(cap: number | null, currency: string): string {
  return cap === null ? 'No cap' : formatMoney(cap, currency);
}

export interface TeamDeps {
  db: Db;
  clock: Clock;
}

export function teamFunctions({ db, clock }: TeamDeps) {
  const users = userRepository(db);

  /** The merchant's owners now, with the merchant's row locked on MySQL (see the header). */
  async function ownersLocked(trx: Trx, merchantKey: number): Promise<number> {
    if (isMysql(trx)) await trx('merchants').where({ id: merchantKey }).forUpdate().first('id');
    const [{ n }] = await trx('users').where({ merchant_id: merchantKey, role: 'owner' }).whereNull('removed_at').count({ n: '*' });
    return Number(n);
  }

  async function memberOf(merchant: Pick<Merchant, 'key'>, id: string): Promise<User> {
    const m = await users.member(merchant.key, id);
    if (!m) throw new NotFoundError('No such team member.');
    return m;
  }

  /** Changing this member (or giving them `role`) needs `owners.manage` when either is an owner. */
  function checkOwnerRule(by: User, target: User, role?: Role): void {
    if ((target.role === 'owner' || role === 'owner') && !can(by.role, 'owners.manage')) throw forbidden('owners.manage');
  }

  const lastOwner = (what: 'demote' | 'remove') =>
    new ConflictError('last_owner', what === 'demote' ? 'This is the only owner: make someone else an owner first, then change this role.' : 'This is the only owner: make someone else an owner first, then remove this member.');

  return {
    /** The merchant's current members, owners first. */
    members: (merchantKey: number) => users.members(merchantKey),
    member: memberOf,

    /**
     * An invited person joins the merchant as `role` (an invitation's email, role and cap), with the
     * name and password they chose. `guard` runs first in the transaction (it spends the invitation).
     * An email that has an account already → 422 on `email`.
     */
    async join(
      merchant: Pick<Merchant, 'key' | 'id'>,
      invite: { email: string; role: Role; amountCap: number | null },
      raw: unknown,
      guard: (trx: Trx) => Promise<void>,
    ): Promise<User> {
      const input = parseBody(joinSchema, raw);
      const taken = () => new ValidationError([{ field: 'email', code: 'email_taken', message: 'An account with this email already exists. Sign in with it, or ask for an invitation to another address.' }]);
      if (await users.emailTaken(invite.email)) throw taken();
      const passwordHash = await hashPassword(input.password);
      const id = publicId('usr');
      try {
        await inTransaction(db, async (trx) => {
          await guard(trx);
          const now = clock.now();
          await userRepository(trx).insert({
            public_id: id,
            merchant_id: merchant.key,
            email: invite.email,
            name: input.name,
            password_hash: passwordHash,
            role: invite.role,
            amount_cap: invite.role === 'agent' ? invite.amountCap : null,
            created_at: now,
            updated_at: now,
          });
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw taken();
        throw err;
      }
      return (await users.byPublicId(id))!;
    },

    /**
     * Sets a member's role and, for an agent, their cap (`amount_cap`: an amount in the merchant's
     * currency, empty for none; other roles have no cap). 422 by field for a bad role or cap, 403 when
     * an admin touches an owner, 409 `last_owner` for the last owner's demotion.
     */
    async changeMember(by: User, merchant: Merchant, id: string, raw: Record<string, unknown>): Promise<User> {
      const target = await memberOf(merchant, id);
      const errors: FieldError[] = [];
      let role: Role = target.role as Role;
      let cap: number | null = null;
      try {
        role = parseRole(raw.role);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        errors.push(...err.errors);
      }
      try {
        cap = parseCap(raw.amount_cap, merchant.currency);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        errors.push(...err.errors);
      }
      if (errors.length) throw new ValidationError(errors);
      checkOwnerRule(by, target, role);
      const amountCap = role === 'agent' ? cap : null;
      if (role === target.role && amountCap === target.amountCap) return target;
      await inTransaction(db, async (trx) => {
        if (target.role === 'owner' && role !== 'owner' && (await ownersLocked(trx, merchant.key)) <= 1) throw lastOwner('demote');
        await userRepository(trx).update(target.key, { role, amount_cap: amountCap, updated_at: clock.now() });
      });
      return (await users.member(merchant.key, id))!;
    },

    /** Removes a member (yourself too, unless you are the last owner): they are signed out at their next request. */
    async removeMember(by: User, merchant: Merchant, id: string): Promise<User> {
      const target = await memberOf(merchant, id);
      checkOwnerRule(by, target);
      await inTransaction(db, async (trx) => {
        if (target.role === 'owner' && (await ownersLocked(trx, merchant.key)) <= 1) throw lastOwner('remove');
        const now = clock.now();
        // The address is freed; the row (name, role) stays for what they made.
        await userRepository(trx).update(target.key, { removed_at: now, email: `${target.id}@removed.invalid`, name: target.name ?? target.email, updated_at: now });
      });
      return target;
    },
  };
}
