import type { Knex } from 'knex';
import { idString, instant, longText, tableOptions } from '../src/core/schema.ts';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('products', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.string('name', 120).notNullable();
    t.text('description').nullable();
    t.bigInteger('price').notNullable();
    t.string('currency', 3).notNullable();
    t.boolean('active').notNullable().defaultTo(true);
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    instant(t, 'deleted_at').nullable();
    t.index(['merchant_id', 'deleted_at', 'id']);
  });

  await knex.schema.createTable('tags', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.string('kind', 16).notNullable();
    t.string('name', 60).notNullable();
    t.string('color', 7).notNullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.unique(['merchant_id', 'kind', 'name']);
  });

  await knex.schema.createTable('customers', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.string('name', 120).notNullable();
    t.string('email', 254).nullable();
    t.string('phone', 20).nullable();
    t.text('address').nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    instant(t, 'deleted_at').nullable();
    t.index(['merchant_id', 'deleted_at', 'id']);
    t.index(['merchant_id', 'email']);
  });

  await knex.schema.createTable('customer_tags', (t) => {
    tableOptions(knex, t);
    t.integer('customer_id').unsigned().notNullable().references('id').inTable('customers').onDelete('CASCADE');
    t.integer('tag_id').unsigned().notNullable().references('id').inTable('tags').onDelete('CASCADE');
    t.primary(['customer_id', 'tag_id']);
    t.index(['tag_id']);
  });

  await knex.schema.createTable('links', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.string('kind', 16).notNullable(); // smart | request
    t.string('type', 16).notNullable(); // amount | product
    t.string('name', 120).notNullable();
    t.string('path', 64).nullable(); // null once deleted (the path is free again) and for request links
    t.string('deleted_path', 64).nullable();
    t.text('description').nullable();
    t.text('internal_notes').nullable();
    t.bigInteger('amount').nullable();
    t.string('currency', 3).notNullable();
    t.integer('product_id').unsigned().nullable().references('id').inTable('products');
    t.integer('payment_limit').nullable();
    t.integer('paid_count').notNullable().defaultTo(0);
    t.boolean('active').notNullable().defaultTo(true);
    t.string('inactive_reason', 16).nullable();
    t.string('redirect_url', 2000).nullable();
    t.string('redirect_target', 8).notNullable().defaultTo('same');
    t.boolean('show_remaining').notNullable().defaultTo(false);
    t.bigInteger('views_count').notNullable().defaultTo(0);
    t.bigInteger('payments_count').notNullable().defaultTo(0);
    t.bigInteger('revenue').notNullable().defaultTo(0);
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    instant(t, 'deleted_at').nullable();
    t.unique(['merchant_id', 'path']);
    t.index(['merchant_id', 'deleted_at', 'created_at']);
    t.index(['merchant_id', 'deleted_at', 'name']);
  });

  await knex.schema.createTable('link_tags', (t) => {
    tableOptions(knex, t);
    t.integer('link_id').unsigned().notNullable().references('id').inTable('links').onDelete('CASCADE');
    t.integer('tag_id').unsigned().notNullable().references('id').inTable('tags').onDelete('CASCADE');
    t.primary(['link_id', 'tag_id']);
    t.index(['tag_id']);
  });

  await knex.schema.createTable('checkout_sessions', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.integer('link_id').unsigned().nullable().references('id').inTable('links');
    t.bigInteger('amount').notNullable();
    t.string('currency', 3).notNullable();
    t.integer('quantity').notNullable().defaultTo(1);
    t.string('customer_name', 120).nullable();
    t.string('customer_email', 254).nullable();
    t.string('customer_phone', 20).nullable();
    longText(t, 'link_snapshot').notNullable();
    t.string('status', 16).notNullable(); // open | completed | expired
    instant(t, 'expires_at').notNullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.index(['link_id']);
  });

  await knex.schema.createTable('payments', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.integer('link_id').unsigned().nullable().references('id').inTable('links');
    t.integer('checkout_session_id').unsigned().nullable().references('id').inTable('checkout_sessions');
    t.integer('customer_id').unsigned().nullable().references('id').inTable('customers');
    t.string('provider', 64).notNullable();
    t.string('provider_ref', 191).nullable();
    t.bigInteger('amount').notNullable();
    t.string('currency', 3).notNullable();
    t.string('status', 16).notNullable();
    t.string('failure_code', 64).nullable();
    t.string('failure_message', 255).nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    instant(t, 'authorized_at').nullable();
    instant(t, 'paid_at').nullable();
    instant(t, 'voided_at').nullable();
    t.index(['merchant_id', 'id']);
    t.index(['link_id', 'id']);
    t.index(['checkout_session_id']);
  });

  await knex.schema.createTable('idempotency_keys', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    idString(knex, t, 'key', 191).notNullable();
    t.string('method', 8).notNullable();
    t.string('path', 255).notNullable();
    t.string('request_hash', 64).notNullable();
    t.string('state', 16).notNullable(); // running | done
    t.integer('response_status').nullable();
    longText(t, 'response_body').nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'locked_until').notNullable();
    t.unique(['merchant_id', 'key']);
    t.index(['created_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['idempotency_keys', 'payments', 'checkout_sessions', 'link_tags', 'links', 'customer_tags', 'customers', 'tags', 'products']) {
    await knex.schema.dropTableIfExists(table);
  }
}
