import type { Knex } from 'knex';
import { idString, instant, longText, tableOptions } from '../src/core/schema.ts';

/**
 * Outgoing webhooks: endpoints per merchant (secrets sealed with AES-256-GCM; the previous secret
 * signs alongside the new one for 24 h after a rotation), one message per (event, endpoint) — its
 * public id is the stable `webhook-id` — and one attempt row per try.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('webhook_endpoints', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.string('url', 2048).notNullable();
    t.string('description', 500).notNullable().defaultTo('');
    t.text('events').notNullable(); // JSON: ["*"] or a list of event types
    t.boolean('enabled').notNullable();
    t.string('disabled_reason', 32).nullable(); // gone (410) | failing (5 days) | null (by hand or enabled)
    t.text('secret').notNullable(); // sealed whsec_…
    t.text('previous_secret').nullable(); // sealed; signs too until previous_secret_until
    instant(t, 'previous_secret_until').nullable();
    instant(t, 'failing_since').nullable(); // first failure since the last success
    instant(t, 'last_success_at').nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.index(['merchant_id', 'id']);
  });

  await knex.schema.createTable('webhook_messages', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique(); // msg_…: the webhook-id header
    t.integer('endpoint_id').unsigned().notNullable().references('id').inTable('webhook_endpoints').onDelete('CASCADE');
    t.integer('merchant_id').unsigned().notNullable();
    idString(knex, t, 'event_id').notNullable(); // evt_…
    t.string('event_type', 64).notNullable();
    longText(t, 'body').notNullable(); // the exact JSON sent on every try
    t.string('status', 16).notNullable(); // pending | succeeded | failed | cancelled
    t.integer('attempts').notNullable().defaultTo(0);
    instant(t, 'next_attempt_at').nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    t.unique(['endpoint_id', 'event_id']);
    t.index(['endpoint_id', 'status', 'id']);
  });

  await knex.schema.createTable('webhook_attempts', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique(); // wha_…
    t.integer('message_id').unsigned().notNullable().references('id').inTable('webhook_messages').onDelete('CASCADE');
    t.integer('endpoint_id').unsigned().notNullable();
    t.integer('number').notNullable(); // 1 for the first try
    t.string('outcome', 16).notNullable(); // succeeded | failed
    t.integer('status_code').nullable();
    t.integer('latency_ms').notNullable();
    t.text('response').nullable(); // the first 1 KB of the body
    t.string('error', 500).nullable();
    instant(t, 'next_retry_at').nullable();
    instant(t, 'created_at').notNullable();
    t.index(['endpoint_id', 'id']);
    t.index(['message_id', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('webhook_attempts');
  await knex.schema.dropTableIfExists('webhook_messages');
  await knex.schema.dropTableIfExists('webhook_endpoints');
}
