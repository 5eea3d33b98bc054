import type { Knex } from 'knex';

/**
 * Who created a payment request on the dashboard (the signed-in user), for its audit trail and the
 * reconciliation report. API requests name their key (`api_key_id`); other sources name no one.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => {
    t.integer('created_by_user_id').unsigned().nullable().references('id').inTable('users').onDelete('SET NULL');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => {
    t.dropForeign(['created_by_user_id']);
    t.dropColumn('created_by_user_id');
  });
}
