import type { Knex } from 'knex';
import { idString, instant, mysqlKnex, tableOptions } from '../src/core/schema.ts';

/**
 * Branding (issue 16 part 5): the merchant's button label (its button style and logo columns exist
 * since the foundation), the logo images themselves, and a link's own branding overrides.
 *
 * - `brand_logos`: a merchant's uploaded logo as re-encoded on the server (WebP), addressed by the
 *   SHA-256 of those bytes, so its URL changes with its content and can be cached for good. Kept in
 *   the database, not on disk: several processes (scaled mode) serve the same logo.
 * - `merchants.logo_url`: the path of the current logo (`/assets/logos/<sha256>.webp`) or null.
 * - `links.branding`: JSON of the overrides a link sets (`{ "logo": "none", "button_style": "pill",
 *   "button_label": "donate", "color": "#0f766e" }`, each optional), null when it follows the merchant.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('merchants', (t) => {
    t.string('button_label', 16).notNullable().defaultTo('pay');
  });
  await knex.schema.alterTable('links', (t) => {
    t.string('branding', 500).nullable();
  });
  await knex.schema.createTable('brand_logos', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    idString(knex, t, 'sha256', 64).notNullable();
    t.string('content_type', 32).notNullable();
    t.integer('width').notNullable();
    t.integer('height').notNullable();
    // MEDIUMBLOB on MySQL (BLOB caps at 64 KB); BLOB on SQLite.
    if (mysqlKnex(knex)) t.specificType('bytes', 'mediumblob').notNullable();
    else t.binary('bytes').notNullable();
    instant(t, 'created_at').notNullable();
    t.unique(['merchant_id', 'sha256']);
    t.index(['sha256']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('brand_logos');
  await knex.schema.alterTable('links', (t) => t.dropColumn('branding'));
  await knex.schema.alterTable('merchants', (t) => t.dropColumn('button_label'));
}
