import type { Knex } from 'knex';
import { idString, instant, longText, tableOptions } from '../src/core/schema.ts';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('merchants', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.string('handle', 40).notNullable().unique();
    t.string('name', 120).notNullable();
    t.string('email', 254).notNullable();
    t.string('currency', 3).notNullable();
    t.string('timezone', 64).notNullable();
    t.string('brand_color', 7).notNullable();
    t.string('logo_url', 500).nullable();
    t.string('button_style', 16).notNullable().defaultTo('rounded');
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
  });

  await knex.schema.createTable('users', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.string('email', 254).notNullable().unique();
    t.string('name', 120).nullable();
    t.string('password_hash', 255).notNullable();
    t.string('role', 16).notNullable().defaultTo('owner');
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    instant(t, 'last_login_at').nullable();
    t.index(['merchant_id']);
  });

  await knex.schema.createTable('api_keys', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.string('name', 80).notNullable();
    idString(knex, t, 'prefix', 24).notNullable();
    idString(knex, t, 'secret_hash', 64).notNullable().unique();
    instant(t, 'created_at').notNullable();
    instant(t, 'last_used_at').nullable();
    instant(t, 'revoked_at').nullable();
    t.index(['merchant_id']);
  });

  await knex.schema.createTable('sessions', (t) => {
    tableOptions(knex, t);
    idString(knex, t, 'sid', 128).primary();
    longText(t, 'sess').notNullable();
    t.bigInteger('expires').notNullable().index();
  });

  await knex.schema.createTable('events', (t) => {
    tableOptions(knex, t);
    t.bigIncrements('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.string('type', 64).notNullable();
    t.integer('merchant_id').unsigned().nullable();
    longText(t, 'payload').notNullable();
    instant(t, 'created_at').notNullable();
    t.index(['merchant_id', 'id']);
    t.index(['type']);
  });

  await knex.schema.createTable('jobs', (t) => {
    tableOptions(knex, t);
    t.bigIncrements('id');
    t.string('kind', 64).notNullable();
    longText(t, 'payload').notNullable();
    idString(knex, t, 'unique_key', 191).nullable().unique();
    t.string('state', 16).notNullable();
    instant(t, 'run_at').notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.integer('max_attempts').notNullable().defaultTo(10);
    instant(t, 'lease_until').nullable();
    t.string('locked_by', 64).nullable();
    t.text('last_error').nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    instant(t, 'finished_at').nullable();
    t.index(['state', 'run_at']);
    t.index(['state', 'lease_until']);
  });

  await knex.schema.createTable('plugins', (t) => {
    tableOptions(knex, t);
    t.string('id', 64).primary();
    t.string('version', 32).notNullable();
    t.string('source', 255).notNullable();
    t.string('status', 16).notNullable();
    t.text('error').nullable();
    instant(t, 'first_seen_at').notNullable();
    instant(t, 'last_loaded_at').notNullable();
  });

  await knex.schema.createTable('plugin_records', (t) => {
    tableOptions(knex, t);
    t.bigIncrements('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.string('plugin_id', 64).notNullable();
    t.string('collection', 64).notNullable();
    t.integer('merchant_id').unsigned().nullable().references('id').inTable('merchants').onDelete('CASCADE');
    longText(t, 'data').notNullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.index(['plugin_id', 'collection', 'merchant_id', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['plugin_records', 'plugins', 'jobs', 'events', 'sessions', 'api_keys', 'users', 'merchants']) {
    await knex.schema.dropTableIfExists(table);
  }
}
