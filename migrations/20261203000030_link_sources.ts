import type { Knex } from 'knex';
import { mysqlKnex } from '../src/core/schema.ts';

/**
 * Where each link came from, for the Links page (smart links and payment requests together):
 * `source` — `dashboard`, `api`, `text_to_pay` or `import` — and the API key that created it. A
 * request's link carries its request's source (which never changes after creation), so the list
 * filters by source on the links table alone. Existing smart links were all made in the dashboard
 * or by the API, which recorded nothing: they count as `dashboard`. Request links take their
 * request's source; Text-to-Pay links made before payment requests existed are `text_to_pay`.
 */
/**
 * Outside a transaction: on SQLite, changing a foreign key of `links` makes knex rebuild the table,
 * switching foreign keys off first — which SQLite ignores inside a transaction, and dropping the old
 * `links` would then cascade to payment_requests, link_tags and the rest. (MySQL commits DDL at once
 * anyway.)
 */
export const config = { transaction: false };

export async function up(knex: Knex): Promise<void> {
  if (mysqlKnex(knex)) {
    await knex.schema.alterTable('links', (t) => {
      t.string('source', 16).notNullable().defaultTo('dashboard');
      t.integer('api_key_id').unsigned().nullable().references('id').inTable('api_keys').onDelete('SET NULL');
    });
  } else {
    // SQLite adds a column with a REFERENCES clause in place (knex would rebuild the table for it).
    await knex.raw("alter table `links` add column `source` varchar(16) not null default 'dashboard'");
    await knex.raw('alter table `links` add column `api_key_id` integer null references `api_keys` (`id`) on delete set null');
  }
  const fromRequest = (column: string) => knex('payment_requests').select(column).whereRaw('payment_requests.link_id = links.id');
  await knex('links')
    .where('kind', 'request')
    .whereExists(knex('payment_requests').select(knex.raw('1')).whereRaw('payment_requests.link_id = links.id'))
    .update({ source: fromRequest('source'), api_key_id: fromRequest('api_key_id') });
  await knex('links')
    .where('kind', 'request')
    .whereNotExists(knex('payment_requests').select(knex.raw('1')).whereRaw('payment_requests.link_id = links.id'))
    .update({ source: 'text_to_pay' });
  await knex.schema.alterTable('links', (t) => {
    // The Links page's source filter (and "API key …"): count and pages from the index alone.
    t.index(['merchant_id', 'source', 'api_key_id', 'kind', 'deleted_at', 'created_at'], 'links_merchant_source_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('links', (t) => {
    t.dropIndex(['merchant_id', 'source', 'api_key_id', 'kind', 'deleted_at', 'created_at'], 'links_merchant_source_index');
    t.dropForeign(['api_key_id']);
    t.dropColumn('api_key_id');
    t.dropColumn('source');
  });
}
