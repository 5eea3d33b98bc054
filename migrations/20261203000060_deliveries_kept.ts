import type { Knex } from 'knex';

/**
 * `kept`: the channel only kept the message (channel-outbox: no email server or SMS provider is
 * configured), so a `sent` delivery reached the dashboard's Outbox and nobody else. The dashboard
 * says "Kept in the Outbox", not "Sent". Every earlier delivery reads as delivered (false).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deliveries', (t) => {
    t.boolean('kept').notNullable().defaultTo(false);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('deliveries', (t) => t.dropColumn('kept'));
}
