import type { Knex } from 'knex';
import { idString, instant } from '../src/core/schema.ts';

/**
 * What hosted providers (provider-stripe) report beyond authorize/decline: the payment method for the
 * receipt (`payment_method`, JSON), a dispute (`dispute_status`, `disputed_at`), refunds made at the
 * provider (`refunds.source`), and plugin records keyed once (`plugin_records.unique_key`: a webhook
 * event id stored once per plugin and collection, so a duplicate delivery is recognised atomically).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payments', (t) => {
    t.string('payment_method', 500).nullable(); // JSON { type, brand?, last4?, network? }
    t.string('dispute_status', 32).nullable();
    instant(t, 'disputed_at').nullable();
    t.index(['status', 'created_at'], 'payments_status_created_at_index'); // a provider's sweep of stale pending payments
  });
  await knex.schema.alterTable('refunds', (t) => {
    t.string('source', 16).notNullable().defaultTo('paylink'); // paylink | provider (made in the provider's dashboard)
  });
  await knex.schema.alterTable('plugin_records', (t) => {
    idString(knex, t, 'unique_key', 191).nullable();
    t.unique(['plugin_id', 'collection', 'unique_key'], { indexName: 'plugin_records_unique_key' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('plugin_records', (t) => {
    t.dropUnique(['plugin_id', 'collection', 'unique_key'], 'plugin_records_unique_key');
    t.dropColumn('unique_key');
  });
  await knex.schema.alterTable('refunds', (t) => t.dropColumn('source'));
  await knex.schema.alterTable('payments', (t) => {
    t.dropIndex(['status', 'created_at'], 'payments_status_created_at_index');
    t.dropColumn('payment_method');
    t.dropColumn('dispute_status');
    t.dropColumn('disputed_at');
  });
}
