import type { Knex } from 'knex';
import { idString, instant, tableOptions } from '../src/core/schema.ts';

/**
 * One-off payment requests (API.md "Payment requests"), owned by the requests feature. A request is
 * the merchant's record of what was asked of whom — reference, metadata, source, cancellation and the
 * short token of its `/r/<token>` URL — over a `kind = 'request'` link, which carries the amount, the
 * expiry and the uses (`payment_limit`, decided by the same claim as every link).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('payment_requests', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.integer('link_id').unsigned().notNullable().unique().references('id').inTable('links').onDelete('CASCADE');
    // The random part of the short token (the URL adds its MAC); unique across merchants.
    idString(knex, t, 'token', 16).notNullable().unique();
    // The merchant's own order or invoice id: at most one request per reference.
    idString(knex, t, 'reference', 64).nullable();
    t.string('source', 16).notNullable();
    t.integer('api_key_id').unsigned().nullable().references('id').inTable('api_keys').onDelete('SET NULL');
    t.text('metadata').nullable();
    instant(t, 'cancelled_at').nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.unique(['merchant_id', 'reference']);
    t.index(['merchant_id', 'created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('payment_requests');
}
