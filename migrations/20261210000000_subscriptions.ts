import type { Knex } from 'knex';
import { idString, instant, tableOptions } from '../src/core/schema.ts';

/**
 * Subscriptions (issue 16 part 2): a customer who subscribed to a recurring plan through a provider
 * that bills them again each period. The checkout remembers the plan it sold (`recurring`, JSON), and
 * each payment names its subscription (`subscription_id`, the public `sub_…`); a renewal payment is
 * unique per (subscription, the provider's invoice) so a replayed webhook records it once.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('subscriptions', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id', 32).notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.integer('link_id').unsigned().nullable().references('id').inTable('links').onDelete('SET NULL');
    t.integer('customer_id').unsigned().nullable().references('id').inTable('customers').onDelete('SET NULL');
    t.string('customer_email', 254).nullable();
    t.string('customer_name', 200).nullable();
    idString(knex, t, 'product_id', 32).nullable();
    t.string('product_name', 200).notNullable();
    t.string('provider', 64).notNullable();
    idString(knex, t, 'provider_ref', 191).nullable();
    t.string('status', 16).notNullable();
    t.string('billing_interval', 8).notNullable();
    t.integer('interval_count').notNullable();
    t.integer('trial_days').nullable();
    t.bigInteger('amount').notNullable();
    t.string('currency', 3).notNullable();
    idString(knex, t, 'first_payment_id', 32).nullable();
    instant(t, 'current_period_end').notNullable();
    instant(t, 'canceled_at').nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.index(['merchant_id', 'id'], 'subscriptions_merchant_index');
    t.index(['provider', 'status', 'current_period_end'], 'subscriptions_due_index');
    t.index(['provider', 'provider_ref'], 'subscriptions_provider_ref_index');
  });
  await knex.schema.alterTable('checkout_sessions', (t) => {
    t.text('recurring').nullable();
  });
  await knex.schema.alterTable('payments', (t) => {
    idString(knex, t, 'subscription_id', 32).nullable();
    idString(knex, t, 'renewal_key', 191).nullable().unique();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payments', (t) => {
    t.dropUnique(['renewal_key']);
    t.dropColumn('renewal_key');
    t.dropColumn('subscription_id');
  });
  await knex.schema.alterTable('checkout_sessions', (t) => t.dropColumn('recurring'));
  await knex.schema.dropTable('subscriptions');
}
