import type { Knex } from 'knex';
import { idString } from '../src/core/schema.ts';

/**
 * Receipts by email: a delivery may be for a payment (`payment_id`) and need not have a link (a
 * payment on the merchant's open-amount page has none); `dedupe_key` makes the delivery written for
 * one event at most once however often its handler runs. Merchants can turn receipts off.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deliveries', (t) => {
    t.integer('link_id').unsigned().nullable().alter();
    t.integer('payment_id').unsigned().nullable().references('id').inTable('payments');
    idString(knex, t as Knex.CreateTableBuilder, 'dedupe_key', 100).nullable().unique();
    t.index(['payment_id']);
  });
  await knex.schema.alterTable('merchants', (t) => {
    t.boolean('send_receipts').notNullable().defaultTo(true);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('merchants', (t) => {
    t.dropColumn('send_receipts');
  });
  await knex('deliveries').whereNull('link_id').del();
  await knex.schema.alterTable('deliveries', (t) => {
    t.dropIndex(['payment_id']);
    t.dropUnique(['dedupe_key']);
    t.dropForeign(['payment_id']);
    t.dropColumn('payment_id');
    t.dropColumn('dedupe_key');
    t.integer('link_id').unsigned().notNullable().alter();
  });
}
