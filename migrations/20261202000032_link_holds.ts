import type { Knex } from 'knex';
import { instant, tableOptions } from '../src/core/schema.ts';

/**
 * Time-boxed holds (DESIGN.md "Checkout and the payment limit", point 5), owned by the links feature:
 * `links.held_count` is what `paid_count + held_count < payment_limit` decides on, and `link_holds`
 * has one row per live hold — which checkout session holds a slot of which link, until when. A hold
 * that turns into a payment, or is released, is deleted with the same conditional statement that
 * moves the counter, so the table only ever holds live holds.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('links', (t) => {
    t.integer('held_count').notNullable().defaultTo(0);
  });
  await knex.schema.createTable('link_holds', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    t.integer('link_id').unsigned().notNullable().references('id').inTable('links').onDelete('CASCADE');
    // The holder: one hold per checkout session at most.
    t.integer('checkout_session_id').unsigned().notNullable().unique().references('id').inTable('checkout_sessions').onDelete('CASCADE');
    instant(t, 'expires_at').notNullable();
    instant(t, 'created_at').notNullable();
    t.index(['expires_at']);
    t.index(['link_id', 'expires_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('link_holds');
  await knex.schema.alterTable('links', (t) => {
    t.dropColumn('held_count');
  });
}
