import type { Knex } from 'knex';

/** The dashboard home sums what each merchant received today, in 7 and in 30 days: by merchant and paid_at. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payments', (t) => t.index(['merchant_id', 'paid_at'], 'payments_merchant_paid_at_index'));
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payments', (t) => t.dropIndex(['merchant_id', 'paid_at'], 'payments_merchant_paid_at_index'));
}
