import type { Knex } from 'knex';

/**
 * The merchant's regional format (a BCP 47 tag such as de-DE): how the dashboard writes dates and
 * which day-month-year order a typed date is read in. en-GB is what every page used before.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('merchants', (t) => {
    t.string('locale', 35).notNullable().defaultTo('en-GB');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('merchants', (t) => t.dropColumn('locale'));
}
