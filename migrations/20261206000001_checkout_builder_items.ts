import type { Knex } from 'knex';
import { tableOptions } from '../src/core/schema.ts';

/**
 * Checkout builder (issue 16), items and amounts:
 * - `products`: a recurring interval (`day|week|month|year` × `interval_count`) and optional
 *   `trial_days`; null interval = a one-time product.
 * - `link_items`: the products an `items` link sells, in order, each with a fixed `quantity` or a
 *   customer-chosen one between `quantity_min` and `quantity_max` (starting at `quantity_default`).
 * - `links.custom_amount`: `{ min, max, suggested }` (JSON text, minor units) when the customer
 *   chooses the amount.
 * - `checkout_sessions.line_items`: what a checkout sold (`[{ product_id?, description, quantity,
 *   unit_amount }]`, the same JSON shape as `payment_requests.line_items`), read with its payments.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('products', (t) => {
    t.string('recurring_interval', 8).nullable();
    t.integer('recurring_count').nullable();
    t.integer('trial_days').nullable();
  });
  await knex.schema.createTable('link_items', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    t.integer('link_id').unsigned().notNullable().references('id').inTable('links').onDelete('CASCADE');
    t.integer('product_id').unsigned().notNullable().references('id').inTable('products');
    t.integer('position').notNullable();
    t.integer('quantity').nullable();
    t.integer('quantity_min').nullable();
    t.integer('quantity_max').nullable();
    t.integer('quantity_default').nullable();
    t.unique(['link_id', 'product_id']);
    t.index(['product_id']);
  });
  await knex.schema.alterTable('links', (t) => {
    t.text('custom_amount').nullable();
  });
  await knex.schema.alterTable('checkout_sessions', (t) => {
    t.text('line_items').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('checkout_sessions', (t) => t.dropColumn('line_items'));
  await knex.schema.alterTable('links', (t) => t.dropColumn('custom_amount'));
  await knex.schema.dropTable('link_items');
  await knex.schema.alterTable('products', (t) => {
    t.dropColumn('trial_days');
    t.dropColumn('recurring_count');
    t.dropColumn('recurring_interval');
  });
}
