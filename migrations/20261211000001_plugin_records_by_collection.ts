import type { Knex } from 'knex';

/**
 * Plugin records of one collection newest first across merchants (`store.list` without a merchant:
 * e.g. the crypto watcher paging through every open checkout). The older index leads with
 * merchant_id after the collection, so such a page sorted every record of the collection: with
 * 10,000 checkouts each page took long enough to hold the event loop (SQLite reads are synchronous).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('plugin_records', (t) => {
    t.index(['plugin_id', 'collection', 'id'], 'plugin_records_collection_id_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('plugin_records', (t) => {
    t.dropIndex(['plugin_id', 'collection', 'id'], 'plugin_records_collection_id_index');
  });
}
