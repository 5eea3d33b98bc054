import type { Knex } from 'knex';

/**
 * The refresh flow: a request may let its customer ask for a new link once it expired
 * (`allow_refresh`); the new request names the one it replaces (`refreshed_from_id`), so the chain
 * can be walked both ways.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => {
    t.boolean('allow_refresh').notNullable().defaultTo(false);
    t.integer('refreshed_from_id').unsigned().nullable().unique().references('id').inTable('payment_requests').onDelete('SET NULL');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => {
    t.dropForeign(['refreshed_from_id']);
    t.dropUnique(['refreshed_from_id']);
    t.dropColumn('refreshed_from_id');
    t.dropColumn('allow_refresh');
  });
}
