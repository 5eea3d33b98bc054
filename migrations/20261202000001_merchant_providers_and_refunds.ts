import type { Knex } from 'knex';
import { idString, instant, longText, mysqlKnex, tableOptions } from '../src/core/schema.ts';

/**
 * Payment providers per merchant (which are enabled, their settings; secrets sealed with AES-256-GCM)
 * and refunds. A payment keeps two refund sums: `refund_claimed` (pending + succeeded, the one a new
 * refund is checked against in a conditional UPDATE) and `amount_refunded` (succeeded only).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('merchant_providers', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.string('provider', 64).notNullable(); // a registered provider id (persisted: providers never rename)
    t.boolean('enabled').notNullable();
    longText(t, 'settings').notNullable(); // JSON of the non-secret values
    longText(t, 'secrets').nullable(); // sealed JSON of the secret values (src/core/encryption.ts)
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.unique(['merchant_id', 'provider']);
  });

  await knex.schema.createTable('refunds', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.integer('payment_id').unsigned().notNullable().references('id').inTable('payments');
    t.bigInteger('amount').notNullable();
    t.string('currency', 3).notNullable();
    t.string('status', 16).notNullable(); // pending | succeeded | failed
    t.string('reason', 500).nullable();
    t.string('provider_ref', 191).nullable();
    t.string('failure_code', 64).nullable();
    t.string('failure_message', 255).nullable();
    t.string('idempotency_key', 64).nullable(); // sha256 of (payment, the caller's key): a repeat answers the same refund
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.index(['payment_id', 'id']);
    t.unique(['payment_id', 'idempotency_key']);
  });

  await knex.schema.alterTable('payments', (t) => {
    t.bigInteger('amount_refunded').notNullable().defaultTo(0);
    t.bigInteger('refund_claimed').notNullable().defaultTo(0);
  });
  // `partially_refunded` is longer than the first migration's 16 characters (SQLite does not enforce it).
  if (mysqlKnex(knex)) await knex.raw('ALTER TABLE payments MODIFY status VARCHAR(24) NOT NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payments', (t) => {
    t.dropColumn('amount_refunded');
    t.dropColumn('refund_claimed');
  });
  await knex.schema.dropTableIfExists('refunds');
  await knex.schema.dropTableIfExists('merchant_providers');
}
