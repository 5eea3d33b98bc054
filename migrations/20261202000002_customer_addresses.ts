import type { Knex } from 'knex';
import { mysqlKnex, tableOptions } from '../src/core/schema.ts';

/**
 * Channels by id: a customer holds one address per custom kind a channel plugin declares (e.g. an
 * ntfy topic), owned by the customers feature. Channel ids are up to 32 characters, so the columns
 * that store them grow on MySQL/MariaDB (SQLite does not enforce string lengths).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('customer_addresses', (t) => {
    tableOptions(knex, t);
    t.integer('customer_id').unsigned().notNullable().references('id').inTable('customers').onDelete('CASCADE');
    t.string('kind', 32).notNullable(); // a channel's address kind, e.g. ntfy_topic
    t.string('value', 254).notNullable();
    t.primary(['customer_id', 'kind']);
  });
  if (mysqlKnex(knex)) {
    await knex.schema.alterTable('message_templates', (t) => {
      t.string('channel', 32).notNullable().alter();
    });
    await knex.schema.alterTable('reminder_plans', (t) => {
      t.string('channels', 255).notNullable().alter(); // comma-separated channel ids
    });
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('customer_addresses');
}
