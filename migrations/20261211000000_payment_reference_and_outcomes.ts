import type { Knex } from 'knex';
import { instant } from '../src/core/schema.ts';

/**
 * What a provider records on a payment for support and what it saw arrive:
 *   support_reference  a short display-safe code the customer quotes (the crypto provider's
 *                      verification code), shown on the receipt, the payment page and in the API
 *   outcome            the newest amount outcome reported (`underpaid`, `overpaid`, `paid_late`),
 *                      `amount_received` what arrived in all (minor units), and the merchant's
 *                      decision (`outcome_resolution`: accepted | dismissed, with when)
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payments', (t) => {
    t.string('support_reference', 32).nullable();
    t.string('outcome', 16).nullable();
    t.bigInteger('amount_received').nullable();
    t.string('outcome_resolution', 16).nullable();
    instant(t, 'outcome_resolved_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payments', (t) => {
    t.dropColumn('support_reference');
    t.dropColumn('outcome');
    t.dropColumn('amount_received');
    t.dropColumn('outcome_resolution');
    t.dropColumn('outcome_resolved_at');
  });
}
