import type { Knex } from 'knex';
import { idString, instant, tableOptions } from '../src/core/schema.ts';

/**
 * Coupons (issue 16), owned by the coupons feature. `redeemed_count + held_count <
 * max_redemptions` is what every claim decides on, in one conditional UPDATE (like a link's payment
 * limit): `held_count` counts checkouts under way that applied the code, `redeemed_count` the paid
 * ones. `coupon_redemptions` has one row per checkout session that applied a code: `held` while the
 * checkout is open, `redeemed` once paid, `released` when it failed or expired. The row's
 * conditional status change decides, then the counter moves in the same transaction.
 *
 * Links get `allow_coupons` (links feature); a checkout session keeps the discount it was opened
 * with (`discount`, JSON: coupon id, code, amount before, amount off), so its payments carry it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('coupons', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.string('code', 40).notNullable(); // as the merchant typed it
    t.string('code_key', 40).notNullable(); // upper case: codes match case-insensitively
    t.integer('percent_off_bp').nullable(); // basis points: 1050 = 10.5 %
    t.bigInteger('amount_off').nullable();
    t.string('currency', 3).nullable(); // with amount_off
    instant(t, 'valid_from').nullable();
    instant(t, 'valid_until').nullable();
    t.integer('max_redemptions').nullable();
    t.integer('redeemed_count').notNullable().defaultTo(0);
    t.integer('held_count').notNullable().defaultTo(0);
    t.boolean('active').notNullable().defaultTo(true);
    // A deleted coupon frees its code: the key is kept unique among live ones by nulling it.
    t.string('live_code_key', 40).nullable();
    instant(t, 'deleted_at').nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.unique(['merchant_id', 'live_code_key']);
    t.index(['merchant_id', 'id']);
  });
  await knex.schema.createTable('coupon_redemptions', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('coupon_id').unsigned().notNullable().references('id').inTable('coupons').onDelete('CASCADE');
    t.integer('merchant_id').unsigned().notNullable();
    t.integer('checkout_session_id').unsigned().notNullable().unique().references('id').inTable('checkout_sessions').onDelete('CASCADE');
    idString(knex, t, 'payment_ref').nullable(); // the paid payment's public id
    t.string('status', 16).notNullable(); // held | redeemed | released
    t.bigInteger('amount_before').notNullable();
    t.bigInteger('amount_off').notNullable();
    t.string('currency', 3).notNullable();
    instant(t, 'expires_at').notNullable(); // the hold's end (the checkout's)
    instant(t, 'created_at').notNullable();
    instant(t, 'redeemed_at').nullable();
    instant(t, 'released_at').nullable();
    t.index(['coupon_id', 'id']);
    t.index(['status', 'expires_at']);
  });
  await knex.schema.alterTable('links', (t) => {
    t.boolean('allow_coupons').notNullable().defaultTo(false);
  });
  await knex.schema.alterTable('checkout_sessions', (t) => {
    t.text('discount').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('checkout_sessions', (t) => t.dropColumn('discount'));
  await knex.schema.alterTable('links', (t) => t.dropColumn('allow_coupons'));
  await knex.schema.dropTableIfExists('coupon_redemptions');
  await knex.schema.dropTableIfExists('coupons');
}
