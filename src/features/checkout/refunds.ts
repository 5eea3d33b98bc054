/**
 * Refunds (dashboard payment page, `POST /api/v1/payments/:id/refunds`).
 *
 *   request   → one transaction: claim the amount on the payment with a conditional UPDATE
 *               (`refund_claimed + amount <= amount`, so two refunds at once can never exceed what
 *               is left), insert the refund `pending`, queue its recovery job; commit.
 *   provider  → `refund(payment, amount, settings)` outside any transaction (refundId = idempotency key).
 *   succeeded → refund succeeded; payment `amount_refunded` += amount, status `partially_refunded` or
 *               `refunded`; link revenue and hourly rollups net of it; `payment.refunded`. The payment
 *               limit slot stays taken: a refund does not reopen a link.
 *   failed    → refund failed; its claim released.
 *   retryable → stays pending; `checkout.refund_retry` retries with backoff, the last attempt fails it.
 *   A crash between commit and the provider call: `checkout.refund` (the recovery job) finishes it.
 */
import { z } from 'zod';
import type { Db, Trx } from '../../core/db.ts';
import { inTransaction, isUniqueViolation, toDate } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventBus } from '../../core/events.ts';
import type { JobQueue } from '../../core/jobs.ts';
import type { Logger } from '../../core/log.ts';
import { publicId, sha256Hex } from '../../core/ids.ts';
import { AppError, ConflictError, NotFoundError, ValidationError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { MAX_MINOR, formatMoney } from '../../core/money.ts';
import { providerErrorOf, type Registries } from '../../core/plugins/registries.ts';
import { ProviderError } from '../../plugin-api.ts';
import type { Merchant } from '../merchants/index.ts';
import { paymentFrom, type AttemptMode, type CheckoutLinks, type CheckoutProviders, type Payment, type PaymentStats } from './service.ts';

export type RefundStatus = 'pending' | 'succeeded' | 'failed';

export interface Refund {
  key: number;
  id: string;
  paymentKey: number;
  amount: number;
  currency: string;
  status: RefundStatus;
  reason: string | null;
  providerRef: string | null;
  failureCode: string | null;
  failureMessage: string | null;
  /** Who asked for it: a team member or an API key (neither: the provider, or before this was recorded). */
  createdByUserKey: number | null;
  apiKeyKey: number | null;
  createdAt: Date;
}

export const refundFrom = (r: any): Refund => ({
  key: r.id,
  id: r.public_id,
  paymentKey: r.payment_id,
  amount: Number(r.amount),
  currency: r.currency,
  status: r.status,
  reason: r.reason ?? null,
  providerRef: r.provider_ref ?? null,
  failureCode: r.failure_code ?? null,
  failureMessage: r.failure_message ?? null,
  createdByUserKey: r.created_by_user_id === null || r.created_by_user_id === undefined ? null : Number(r.created_by_user_id),
  apiKeyKey: r.api_key_id === null || r.api_key_id === undefined ? null : Number(r.api_key_id),
  createdAt: toDate(r.created_at),
});

/** The API representation (API.md "Refunds"). */
export function refundJson(r: Refund, paymentId: string) {
  return {
    id: r.id,
    object: 'refund',
    payment_id: paymentId,
    amount: r.amount,
    currency: r.currency,
    status: r.status,
    reason: r.reason,
    failure_code: r.failureCode,
    created_at: r.createdAt.toISOString(),
  };
}

const noControl = (s: string) => !/[\u0000-\u0009\u000b-\u001f\u007f\u2028\u2029]/.test(s);

export const refundInputSchema = z.strictObject(
  {
    amount: z
      .number({ error: 'amount must be a whole number of minor units (e.g. 1250 for 12.50).' })
      .int('amount must be a whole number of minor units (e.g. 1250 for 12.50).')
      .min(1, 'amount must be at least 1.')
      .max(MAX_MINOR, 'amount is too large.')
      .optional(),
    reason: z
      .string({ error: 'reason must be text.' })
      .trim()
      .max(500, 'Keep the reason under 500 characters.')
      .refine(noControl, 'The reason cannot contain control characters.')
      .nullable()
      .optional(),
  },
  { error: 'Send an object with "amount" and/or "reason".' },
);
export type RefundInput = z.infer<typeof refundInputSchema>;

/** Payments that can be refunded (what is left of them). */
export const REFUNDABLE: readonly Payment['status'][] = ['paid', 'partially_refunded'];

export const REFUND_RECOVERY_MS = 5 * 60_000;
export const REFUND_RETRY_FIRST_MS = 30_000;
export const REFUND_RETRY_ATTEMPTS = 8;

export interface RefundDeps {
  db: Db;
  clock: Clock;
  events: EventBus;
  jobs: JobQueue;
  registries: Registries;
  log: Logger;
  providers: Pick<CheckoutProviders, 'settingsFor'>;
  /** A merchant's public id by internal key (for event payloads). */
  merchantIdOf(merchantKey: number): Promise<string | null>;
  /** The links feature: a refund takes its amount off the link's revenue. */
  links: Pick<CheckoutLinks, 'recordRefund'>;
  /** Hourly rollups (analytics). */
  stats: Pick<PaymentStats, 'paymentRefunded'>;
}

export function createRefundService(deps: RefundDeps) {
  const { db, clock, events, registries, log } = deps;

  const loadRefund = async (where: Record<string, unknown>) => {
    const r = await db('refunds').where(where).first();
    return r ? refundFrom(r) : null;
  };

  /** Calls the provider for a pending refund and records what it said. */
  async function complete(refund: Refund, payment: Payment, mode: AttemptMode): Promise<Refund> {
    const provider = registries.providers.get(payment.provider);
    const settings = (await deps.providers.settingsFor(payment.merchantKey, payment.provider)) ?? {};
    let providerRef: string | null = null;
    try {
      if (!provider) throw new ProviderError(`the payment provider "${payment.provider}" is not installed`, { retryable: true, code: 'provider_unavailable' });
      const result = await provider.refund(
        { paymentId: payment.id, providerRef: payment.providerRef, amount: payment.amount, currency: payment.currency, refundId: refund.id, reason: refund.reason },
        refund.amount,
        settings,
      );
      providerRef = result && typeof result.providerRef === 'string' ? result.providerRef.slice(0, 191) : null;
    } catch (err) {
      const pe = providerErrorOf(err);
      const retryable = pe?.retryable === true;
      if (retryable && mode === 'retry') throw err; // the job queue retries with backoff
      if (retryable && mode !== 'last_retry') {
        log.warn('refund failed with a retryable error; retrying with backoff', { refundId: refund.id, error: err });
        await inTransaction(db, async (trx) => {
          const n = await trx('refunds').where({ id: refund.key, status: 'pending' }).update({ failure_code: 'retrying', failure_message: err instanceof Error ? err.message.slice(0, 255) : null, updated_at: clock.now() });
          if (n) await deps.jobs.enqueue(trx, 'checkout.refund_retry', { refundId: refund.id }, { uniqueKey: `refund-retry:${refund.id}`, runAt: new Date(clock.now().getTime() + REFUND_RETRY_FIRST_MS), maxAttempts: REFUND_RETRY_ATTEMPTS });
        });
        return (await loadRefund({ id: refund.key }))!;
      }
      log.error('refund failed', { refundId: refund.id, paymentId: payment.id, error: err });
      const code = pe?.code ?? 'refund_failed';
      const message = pe?.message ?? 'The payment provider could not refund this payment.';
      await inTransaction(db, async (trx) => {
        const n = await trx('refunds').where({ id: refund.key, status: 'pending' }).update({ status: 'failed', failure_code: code.slice(0, 64), failure_message: message.slice(0, 255), updated_at: clock.now() });
        // Give the claimed amount back, once: only the transition out of pending releases it.
        if (n) await trx('payments').where({ id: payment.key }).update({ refund_claimed: trx.raw('refund_claimed - ?', [refund.amount]), updated_at: clock.now() });
      });
      return (await loadRefund({ id: refund.key }))!;
    }

    const merchantId = (await deps.merchantIdOf(payment.merchantKey)) ?? '';
    await inTransaction(db, async (trx) => {
      const n = await trx('refunds').where({ id: refund.key, status: 'pending' }).update({ status: 'succeeded', provider_ref: providerRef, failure_code: null, failure_message: null, updated_at: clock.now() });
      if (!n) return; // recorded by another run already
      await applySucceeded(trx, merchantId, payment, refund);
    });
    return (await loadRefund({ id: refund.key }))!;
  }

  /**
   * A refund that just succeeded (its row already says so), in the same transaction: the payment's
   * `amount_refunded` and status, the link's revenue and rollups net of it, and `payment.refunded`.
   */
  async function applySucceeded(trx: Trx, merchantId: string, payment: Payment, refund: Pick<Refund, 'id' | 'amount' | 'currency' | 'reason'>): Promise<void> {
    const now = clock.now();
    // Two statements: MySQL evaluates SET left to right (a later column sees the new value), SQLite does not.
    await trx('payments').where({ id: payment.key }).update({ amount_refunded: trx.raw('amount_refunded + ?', [refund.amount]), updated_at: now });
    await trx('payments').where({ id: payment.key }).update({ status: trx.raw('case when amount_refunded >= amount then ? else ? end', ['refunded', 'partially_refunded']) });
    const after = paymentFrom(await trx('payments').where({ id: payment.key }).first());
    let linkId: string | null = null;
    if (payment.linkKey !== null) {
      // Revenue is shown net of refunds; paid_count (the limit's slot) and payments_count stay.
      ({ linkId } = await deps.links.recordRefund(trx, payment.linkKey, refund.amount));
      await deps.stats.paymentRefunded(trx, payment.linkKey, now, refund.amount);
    }
    await events.emit(
      trx,
      'payment.refunded',
      {
        merchantId,
        paymentId: payment.id,
        refundId: refund.id,
        linkId,
        amount: refund.amount,
        currency: refund.currency,
        amountRefunded: after.amountRefunded,
        status: after.status === 'refunded' ? 'refunded' : 'partially_refunded',
        reason: refund.reason,
      },
      payment.merchantKey,
    );
  }

  const service = {
    /**
     * Refunds `amount` (default: all that is left) of one of the merchant's payments. `idempotencyKey`
     * (a form's one-time token, or the API's Idempotency-Key) makes a repeat answer the same refund.
     */
    async refund(merchant: Pick<Merchant, 'key' | 'actor'>, paymentId: string, raw: unknown, idempotencyKey: string | null = null): Promise<{ refund: Refund; payment: Payment }> {
      const input = parseBody(refundInputSchema, raw);
      const row = await db('payments').where({ merchant_id: merchant.key, public_id: String(paymentId).slice(0, 64) }).first();
      if (!row) throw new NotFoundError('No such payment.');
      const payment = paymentFrom(row);
      const keyHash = idempotencyKey ? sha256Hex(`${payment.id}\n${idempotencyKey}`) : null;
      if (keyHash) {
        const again = await loadRefund({ payment_id: payment.key, idempotency_key: keyHash });
        if (again) return { refund: again, payment: (await service.payment(payment.key))! };
      }
      if (!REFUNDABLE.includes(payment.status)) {
        throw new ConflictError('payment_not_refundable', payment.status === 'refunded' ? 'This payment has been refunded in full already.' : 'Only a succeeded payment can be refunded.');
      }

      const refundId = publicId('re');
      const created = await inTransaction(db, async (trx) => {
        const now = clock.now();
        const current = await trx('payments').where({ id: payment.key }).first('amount', 'refund_claimed');
        const left = Number(current.amount) - Number(current.refund_claimed);
        const amount = input.amount ?? left;
        const tooLarge = () =>
          new AppError('amount_too_large', 422, 'That is more than is left to refund.', {
            errors: [{ field: 'amount', code: 'amount_too_large', message: left > 0 ? `At most ${formatMoney(left, payment.currency)} is left to refund.` : 'Nothing is left to refund.' }],
          });
        if (amount < 1) throw tooLarge();
        // The decision is this conditional UPDATE alone (the read above only words the default amount).
        const claimed = await trx('payments')
          .where({ id: payment.key })
          .whereIn('status', REFUNDABLE as string[])
          .andWhere(trx.raw('refund_claimed + ? <= amount', [amount]))
          .update({ refund_claimed: trx.raw('refund_claimed + ?', [amount]), updated_at: now });
        if (!claimed) throw tooLarge();
        try {
          await trx('refunds').insert({
            public_id: refundId,
            merchant_id: merchant.key,
            payment_id: payment.key,
            amount,
            currency: payment.currency,
            status: 'pending',
            reason: input.reason || null,
            idempotency_key: keyHash,
            created_by_user_id: merchant.actor?.userKey ?? null,
            api_key_id: merchant.actor?.apiKeyKey ?? null,
            created_at: now,
            updated_at: now,
          });
        } catch (err) {
          if (keyHash && isUniqueViolation(err)) return false; // the same request, a moment earlier
          throw err;
        }
        await deps.jobs.enqueue(trx, 'checkout.refund', { refundId }, { uniqueKey: `refund:${refundId}`, runAt: new Date(now.getTime() + REFUND_RECOVERY_MS) });
        return true;
      });
      if (!created) {
        const again = await loadRefund({ payment_id: payment.key, idempotency_key: keyHash });
        if (again) return { refund: again, payment: (await service.payment(payment.key))! };
        throw new ConflictError('refund_in_progress', 'This refund is already being made.');
      }
      const refund = await complete((await loadRefund({ public_id: refundId }))!, payment, 'inline');
      return { refund, payment: (await service.payment(payment.key))! };
    },

    /**
     * A refund the provider made on its own (the merchant refunded in the vendor's dashboard), recorded
     * once per `providerRef`: claimed like any refund (never more than is left), succeeded at once.
     * Answers the existing refund for a `providerRef` seen before.
     */
    async recordProviderRefund(payment: Payment, input: { providerRef: string; amount: number; reason: string | null }): Promise<{ refund: Refund; created: boolean }> {
      if (!Number.isSafeInteger(input.amount) || input.amount < 1 || input.amount > MAX_MINOR) throw new AppError('invalid_amount', 422, 'A refund amount is a positive whole number of minor units.');
      const keyHash = sha256Hex(`provider\n${payment.id}\n${input.providerRef}`);
      const existing = await loadRefund({ payment_id: payment.key, idempotency_key: keyHash });
      if (existing) return { refund: existing, created: false };
      const refundId = publicId('re');
      const merchantId = (await deps.merchantIdOf(payment.merchantKey)) ?? '';
      const created = await inTransaction(db, async (trx) => {
        const now = clock.now();
        const claimed = await trx('payments')
          .where({ id: payment.key })
          .whereIn('status', REFUNDABLE as string[])
          .andWhere(trx.raw('refund_claimed + ? <= amount', [input.amount]))
          .update({ refund_claimed: trx.raw('refund_claimed + ?', [input.amount]), updated_at: now });
        if (!claimed) throw new AppError('amount_too_large', 422, 'The provider reports more refunded than is left on this payment.');
        try {
          await trx('refunds').insert({
            public_id: refundId,
            merchant_id: payment.merchantKey,
            payment_id: payment.key,
            amount: input.amount,
            currency: payment.currency,
            status: 'succeeded',
            reason: input.reason ? input.reason.slice(0, 500) : null,
            provider_ref: input.providerRef.slice(0, 191),
            source: 'provider',
            idempotency_key: keyHash,
            created_at: now,
            updated_at: now,
          });
        } catch (err) {
          if (isUniqueViolation(err)) return false; // the same report, delivered twice at once
          throw err;
        }
        await applySucceeded(trx, merchantId, payment, { id: refundId, amount: input.amount, currency: payment.currency, reason: input.reason });
        return true;
      });
      return { refund: (await loadRefund({ payment_id: payment.key, idempotency_key: keyHash }))!, created };
    },

    async payment(key: number): Promise<Payment | null> {
      const r = await db('payments').where({ id: key }).first();
      return r ? paymentFrom(r) : null;
    },

    /** A payment's refunds, oldest first. */
    async list(paymentKey: number): Promise<Refund[]> {
      return (await db('refunds').where({ payment_id: paymentKey }).orderBy('id')).map(refundFrom);
    },

    /** Refunds of several payments (one query), grouped by payment key. */
    async forPayments(paymentKeys: number[]): Promise<Map<number, Refund[]>> {
      const out = new Map<number, Refund[]>();
      if (!paymentKeys.length) return out;
      for (const r of (await db('refunds').whereIn('payment_id', paymentKeys).orderBy('id')).map(refundFrom)) {
        const list = out.get(r.paymentKey) ?? [];
        list.push(r);
        out.set(r.paymentKey, list);
      }
      return out;
    },
  };

  async function resume(refundId: string, mode: AttemptMode): Promise<void> {
    const refund = await loadRefund({ public_id: refundId });
    if (!refund || refund.status !== 'pending') return;
    if (mode === 'recovery' && refund.failureCode === 'retrying') return; // its retry job owns it
    const payment = (await service.payment(refund.paymentKey))!;
    await complete(refund, payment, mode);
  }
  deps.jobs.define<{ refundId: string }>('checkout.refund', async ({ refundId }) => resume(refundId, 'recovery'));
  deps.jobs.define<{ refundId: string }>('checkout.refund_retry', async ({ refundId }, job) => resume(refundId, job.attempts >= job.maxAttempts ? 'last_retry' : 'retry'));

  return service;
}

export type RefundService = ReturnType<typeof createRefundService>;
