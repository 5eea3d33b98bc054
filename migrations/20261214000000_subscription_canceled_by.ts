import type { Knex } from 'knex';

/**
 * Who ended a subscription: `merchant` (dashboard or API), `customer` (from their receipt page) or
 * `provider` (canceled at the payment provider). Null while it runs, and for subscriptions canceled
 * before this column existed (their `subscription.canceled` event still says who).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.string('canceled_by', 16).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('subscriptions', (t) => {
    t.dropColumn('canceled_by');
  });
}
