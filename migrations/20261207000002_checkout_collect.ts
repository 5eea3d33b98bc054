import type { Knex } from 'knex';
import { instant } from '../src/core/schema.ts';

/**
 * What a link's checkout collects (issue 16): `links.collect` (JSON: phone off/optional/required,
 * address, instructions, terms URL, custom fields), and what a customer entered, kept on their
 * checkout session so every payment of it carries it: `fields` (JSON, by custom field key),
 * `instructions`, `address`, and when they ticked the terms (`terms_accepted_at`). The phone goes in
 * the existing `customer_phone`.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('links', (t) => {
    t.text('collect').nullable();
  });
  await knex.schema.alterTable('checkout_sessions', (t) => {
    t.text('fields').nullable();
    t.text('instructions').nullable();
    t.string('address', 500).nullable();
    instant(t, 'terms_accepted_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('checkout_sessions', (t) => {
    t.dropColumn('fields');
    t.dropColumn('instructions');
    t.dropColumn('address');
    t.dropColumn('terms_accepted_at');
  });
  await knex.schema.alterTable('links', (t) => t.dropColumn('collect'));
}
