import type { Knex } from 'knex';
import { idString, instant, tableOptions } from '../src/core/schema.ts';

/**
 * Saved payment profiles: a customer who saved their card with a provider (Stripe keeps the card; we
 * keep which provider customer it is and a label such as "Visa •••• 4242"), one per provider.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('customer_payment_profiles', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id', 32).notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.integer('customer_id').unsigned().notNullable().references('id').inTable('customers').onDelete('CASCADE');
    t.string('provider', 64).notNullable();
    idString(knex, t, 'provider_ref', 191).notNullable();
    t.string('label', 120).notNullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.unique(['customer_id', 'provider'], { indexName: 'cpp_customer_provider_unique' });
    t.index(['merchant_id', 'provider', 'provider_ref'], 'cpp_merchant_provider_ref_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('customer_payment_profiles');
}
