import type { Knex } from 'knex';
import { instant, tableOptions } from '../src/core/schema.ts';

/**
 * Link analytics: raw views (kept for the retention period), hourly rollups that charts read (kept
 * for good), a count of pruned views per link (so "stored views" needs no COUNT), and the
 * merchant's retention setting.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('link_views', (t) => {
    tableOptions(knex, t);
    t.bigIncrements('id');
    t.integer('link_id').unsigned().notNullable().references('id').inTable('links').onDelete('CASCADE');
    instant(t, 'viewed_at').notNullable();
    t.string('ip', 48).nullable(); // masked: 192.168.1.xxx or 2001:db8:85a3::/48
    t.string('browser', 40).nullable();
    t.string('os', 40).nullable();
    t.string('device', 16).nullable(); // desktop | mobile | tablet | …
    t.string('referer', 500).nullable();
    // Newest-first pages, the Views tab's offsets (index-only) and retention all walk this index.
    t.index(['link_id', 'viewed_at']);
  });

  await knex.schema.createTable('link_stats_hourly', (t) => {
    tableOptions(knex, t);
    t.integer('link_id').unsigned().notNullable().references('id').inTable('links').onDelete('CASCADE');
    t.integer('hour').notNullable(); // hours since the Unix epoch (UTC)
    t.integer('views').notNullable().defaultTo(0);
    t.integer('payments').notNullable().defaultTo(0);
    t.bigInteger('revenue').notNullable().defaultTo(0);
    t.primary(['link_id', 'hour']);
  });

  await knex.schema.alterTable('links', (t) => {
    t.bigInteger('views_pruned').notNullable().defaultTo(0);
  });

  await knex.schema.alterTable('merchants', (t) => {
    t.integer('view_retention_months').notNullable().defaultTo(13);
  });

  await knex.schema.alterTable('payments', (t) => {
    t.index(['link_id', 'created_at']);
    t.index(['merchant_id', 'created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payments', (t) => {
    t.dropIndex(['merchant_id', 'created_at']);
    t.dropIndex(['link_id', 'created_at']);
  });
  await knex.schema.alterTable('merchants', (t) => t.dropColumn('view_retention_months'));
  await knex.schema.alterTable('links', (t) => t.dropColumn('views_pruned'));
  await knex.schema.dropTableIfExists('link_stats_hourly');
  await knex.schema.dropTableIfExists('link_views');
}
