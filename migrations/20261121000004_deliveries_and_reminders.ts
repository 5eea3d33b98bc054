import type { Knex } from 'knex';
import { idString, instant, longText, tableOptions } from '../src/core/schema.ts';

/**
 * Sending links to customers: the customer a link was made for (request links, links sent to one
 * customer) and when a one-off request expires; the deliveries outbox; reminder plans (one per link
 * and customer); per-merchant message templates; after-payment actions chosen per link.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('links', (t) => {
    t.integer('customer_id').unsigned().nullable().references('id').inTable('customers');
    instant(t, 'expires_at').nullable();
  });

  await knex.schema.createTable('reminder_plans', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.integer('link_id').unsigned().notNullable().references('id').inTable('links').onDelete('CASCADE');
    t.integer('customer_id').unsigned().notNullable().references('id').inTable('customers');
    t.string('channels', 100).notNullable(); // comma-separated channel ids, e.g. "email,sms"
    t.string('frequency', 16).notNullable(); // daily | every_2_days | every_3_days | weekly | monthly
    t.integer('max_count').notNullable();
    t.integer('sent_count').notNullable().defaultTo(0);
    instant(t, 'anchor_at').notNullable(); // the first send; reminder n is due at anchor + n intervals
    instant(t, 'next_at').nullable(); // null once completed or stopped
    t.string('state', 16).notNullable(); // active | completed | stopped
    t.string('stop_reason', 32).nullable(); // paid | link_closed | cancelled
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    // The sweep walks (state, next_at); a payment stops its link's (and customer's) plans.
    t.index(['state', 'next_at']);
    t.index(['link_id', 'customer_id']);
  });

  await knex.schema.createTable('deliveries', (t) => {
    tableOptions(knex, t);
    t.bigIncrements('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.integer('link_id').unsigned().notNullable().references('id').inTable('links').onDelete('CASCADE');
    t.integer('customer_id').unsigned().nullable().references('id').inTable('customers');
    t.integer('plan_id').unsigned().nullable().references('id').inTable('reminder_plans').onDelete('SET NULL');
    t.string('channel', 64).notNullable();
    t.string('kind', 16).notNullable(); // initial | reminder | expiry | receipt
    t.integer('seq').notNullable().defaultTo(0); // reminder number (1..max); 0 for others
    t.string('to_address', 254).notNullable();
    t.string('status', 16).notNullable(); // queued | sending | sent | failed | cancelled
    t.integer('attempts').notNullable().defaultTo(0);
    instant(t, 'next_attempt_at').notNullable();
    instant(t, 'lease_until').nullable();
    t.string('provider_message_id', 255).nullable();
    t.string('error', 500).nullable();
    instant(t, 'sent_at').nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    // The sender claims (status, next_attempt_at); lists read by link, customer and plan.
    t.index(['status', 'next_attempt_at']);
    t.index(['link_id', 'id']);
    t.index(['customer_id', 'id']);
    t.index(['plan_id']);
  });

  await knex.schema.createTable('message_templates', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.string('kind', 16).notNullable(); // initial | reminder
    t.string('channel', 16).notNullable(); // email | sms | whatsapp
    t.string('subject', 200).nullable();
    t.text('body').notNullable();
    instant(t, 'updated_at').notNullable();
    t.unique(['merchant_id', 'kind', 'channel']);
  });

  await knex.schema.createTable('link_actions', (t) => {
    tableOptions(knex, t);
    t.integer('link_id').unsigned().notNullable().references('id').inTable('links').onDelete('CASCADE');
    t.string('action_id', 64).notNullable();
    longText(t, 'settings').notNullable();
    t.primary(['link_id', 'action_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['link_actions', 'message_templates', 'deliveries', 'reminder_plans']) await knex.schema.dropTableIfExists(table);
  await knex.schema.alterTable('links', (t) => {
    t.dropForeign(['customer_id']);
    t.dropColumn('customer_id');
    t.dropColumn('expires_at');
  });
}
