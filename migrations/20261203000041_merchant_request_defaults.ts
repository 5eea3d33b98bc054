import type { Knex } from 'knex';

/**
 * A merchant's default for new payment requests: whether their customers may ask for a new link once
 * one expired (the refresh flow), when a request does not say (`allow_refresh` left out).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('merchants', (t) => {
    t.boolean('request_allow_refresh').notNullable().defaultTo(false);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('merchants', (t) => t.dropColumn('request_allow_refresh'));
}
