import type { Knex } from 'knex';

/**
 * `notify_before_expiry`: how many seconds before its expiry a pending request sends its customer a
 * last reminder (on the channels it was sent on). Kept so a refreshed request asks the same.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => {
    t.integer('notify_before_expiry').unsigned().nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => t.dropColumn('notify_before_expiry'));
}
