import type { Knex } from 'knex';

/**
 * The dashboard's Links page lists smart links only (payment requests have their own page), so its
 * count, its newest-first order and its by-name order all filter on `kind`. These indexes keep those
 * queries on an index when one merchant owns most of the table.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('links', (t) => {
    t.index(['merchant_id', 'kind', 'deleted_at', 'created_at'], 'links_merchant_kind_created_index');
    t.index(['merchant_id', 'kind', 'deleted_at', 'name'], 'links_merchant_kind_name_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('links', (t) => {
    t.dropIndex(['merchant_id', 'kind', 'deleted_at', 'name'], 'links_merchant_kind_name_index');
    t.dropIndex(['merchant_id', 'kind', 'deleted_at', 'created_at'], 'links_merchant_kind_created_index');
  });
}
