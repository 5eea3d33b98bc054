/**
 * What a hosted provider reports besides authorize/decline (PluginApi.services.checkout): how the
 * customer paid, a checkout that ended unpaid at the provider, a dispute, and the pending payments a
 * sweep should ask the provider about. Every write is conditional on the payment's state, so a
 * duplicate or late report (an `expired` after `completed`) changes nothing.
 *
 *   expire   pending → failed (`expired`), its session closed; payment.failed { reason: 'expired' }.
 *   dispute  dispute_status set (flagged on the dashboard); payment.disputed on every change.
 */
import type { Db, Trx } from '../../core/db.ts';
import { inTransaction } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventBus } from '../../core/events.ts';
import type { AmountOutcome, PaymentMethodInfo } from '../../plugin-api.ts';
import { paymentFrom, type CheckoutLinks, type EventRefResolvers, type Payment } from './service.ts';

export interface ProviderReportDeps {
  db: Db;
  clock: Clock;
  events: EventBus;
  links: Pick<CheckoutLinks, 'publicIdOf'>;
  refs: EventRefResolvers;
  /**
   * Runs in the transaction that expires a pending payment (e.g. releasing a slot held for it), so the
   * release happens once, with the state change.
   */
  onExpired?: (trx: Trx, payment: Payment) => Promise<void>;
}

const TX_HASH = /^0x[0-9a-fA-F]{64}$/;

/** Statuses of a payment whose price was received (a late report adds to it). */
const PAID_BEFORE: readonly string[] = ['paid', 'partially_refunded', 'refunded'];

/** `{ type, brand?, last4?, network?, txHashes? }`, trimmed to what fits; null when there is no usable type. */
export function cleanPaymentMethod(pm: unknown): PaymentMethodInfo | null {
  if (!pm || typeof pm !== 'object') return null;
  const o = pm as Record<string, unknown>;
  const word = (v: unknown, max: number) => (typeof v === 'string' && /^[A-Za-z0-9_ .-]+$/.test(v) ? v.slice(0, max).toLowerCase() : undefined);
  const type = word(o.type, 32);
  if (!type) return null;
  const brand = word(o.brand, 32);
  const last4 = typeof o.last4 === 'string' && /^[0-9]{4}$/.test(o.last4) ? o.last4 : undefined;
  const network = word(o.network, 32);
  const txHashes = Array.isArray(o.txHashes) ? o.txHashes.filter((h): h is string => typeof h === 'string' && TX_HASH.test(h)).slice(0, 20).map((h) => h.toLowerCase()) : [];
  return { type, ...(brand ? { brand } : {}), ...(last4 ? { last4 } : {}), ...(network ? { network } : {}), ...(txHashes.length ? { txHashes } : {}) };
}

export function createProviderReports(deps: ProviderReportDeps) {
  const { db, clock, events } = deps;

  async function paymentEvent(trx: Trx, payment: Payment) {
    const merchantId = (await deps.refs.merchantIdOf(trx, payment.merchantKey)) as string;
    const linkId = payment.linkKey === null ? null : await deps.links.publicIdOf(trx, payment.linkKey);
    const customerId = payment.customerKey === null ? null : await deps.refs.customerIdOf(trx, payment.customerKey);
    return { merchantId, linkId, customerId, paymentId: payment.id, amount: payment.amount, currency: payment.currency, provider: payment.provider };
  }

  return {
    /** Records how the customer paid (the receipt and the API show it). */
    async setPaymentMethod(payment: Payment, pm: PaymentMethodInfo): Promise<void> {
      const clean = cleanPaymentMethod(pm);
      if (!clean) return;
      await db('payments').where({ id: payment.key }).update({ payment_method: JSON.stringify(clean), updated_at: clock.now() });
    },

    /** The provider's checkout ended unpaid: pending → failed (`expired`); false when it had moved on. */
    async expire(payment: Payment): Promise<boolean> {
      return inTransaction(db, async (trx) => {
        const now = clock.now();
        const n = await trx('payments')
          .where({ id: payment.key, status: 'pending' })
          .update({ status: 'failed', failure_code: 'expired', failure_message: 'The checkout expired before it was paid.', updated_at: now });
        if (!n) return false;
        if (payment.sessionKey !== null) await trx('checkout_sessions').where({ id: payment.sessionKey, status: 'open' }).update({ status: 'expired', updated_at: now });
        await deps.onExpired?.(trx, payment);
        await events.emit(trx, 'payment.failed', { ...(await paymentEvent(trx, payment)), reason: 'expired' }, payment.merchantKey);
        return true;
      });
    },

    /** Flags a disputed payment; emits payment.disputed when the dispute's status changed. */
    async flagDispute(payment: Payment, dispute: { status: string; amount: number; reason: string | null }): Promise<boolean> {
      const status = String(dispute.status).slice(0, 32);
      return inTransaction(db, async (trx) => {
        const now = clock.now();
        const n = await trx('payments')
          .where({ id: payment.key })
          .andWhere((q) => q.whereNull('dispute_status').orWhereNot('dispute_status', status))
          .update({ dispute_status: status, disputed_at: payment.disputeStatus === null ? now : trx.raw('coalesce(disputed_at, ?)', [now]), updated_at: now });
        if (!n) return false;
        const { customerId: _c, ...refs } = await paymentEvent(trx, payment);
        await events.emit(
          trx,
          'payment.disputed',
          { ...refs, amount: Number.isSafeInteger(dispute.amount) && dispute.amount >= 0 ? dispute.amount : payment.amount, status, reason: dispute.reason ? String(dispute.reason).slice(0, 100) : null },
          payment.merchantKey,
        );
        return true;
      });
    },

    /** A short code for the customer to quote (receipt, payment page, API `support_reference`). */
    async setSupportReference(payment: Payment, reference: string): Promise<void> {
      await db('payments').where({ id: payment.key }).update({ support_reference: reference, updated_at: clock.now() });
    },

    /**
     * payment.underpaid / overpaid / paid_late with what arrived; no status changes. The payment is
     * flagged for the merchant's decision (`outcome`, a new report reopens a decided one) with what
     * arrived in all: an underpaid or overpaid report says it (what came in time); a late one adds
     * to what came before (the price, for a payment that was paid).
     */
    async flagOutcome(payment: Payment, outcome: AmountOutcome): Promise<void> {
      const type = ({ underpaid: 'payment.underpaid', overpaid: 'payment.overpaid', paid_late: 'payment.paid_late' } as const)[outcome.outcome];
      const txHashes = (outcome.txHashes ?? []).filter((h) => typeof h === 'string' && TX_HASH.test(h)).slice(0, 50).map((h) => h.toLowerCase());
      await inTransaction(db, async (trx) => {
        const before = PAID_BEFORE.includes(payment.status) ? payment.amount : 0;
        await trx('payments')
          .where({ id: payment.key })
          .update({
            outcome: outcome.outcome,
            amount_received: outcome.outcome === 'paid_late' ? trx.raw('coalesce(amount_received, ?) + ?', [before, outcome.amountReceived]) : outcome.amountReceived,
            outcome_resolution: null,
            outcome_resolved_at: null,
            updated_at: clock.now(),
          });
        await events.emit(trx, type, { ...(await paymentEvent(trx, payment)), amountReceived: outcome.amountReceived, txHashes }, payment.merchantKey);
      });
    },

    /** Pending payments of these providers started before `before`, oldest first. */
    async pending(providers: string[], before: Date, limit: number): Promise<Payment[]> {
      if (!providers.length) return [];
      const rows = await db('payments').whereIn('provider', providers).andWhere('status', 'pending').andWhere('created_at', '<', before).orderBy('id').limit(limit);
      return rows.map(paymentFrom);
    },
  };
}

export type ProviderReports = ReturnType<typeof createProviderReports>;
