import type { Knex } from 'knex';
import { idString, instant, tableOptions } from '../src/core/schema.ts';

/**
 * Single-use account tokens (the accounts feature): password reset links (30 minutes) and sign-up
 * invitations (7 days). Only a keyed hash of each token is stored; `used_at` is set by a conditional
 * UPDATE, so a token is spent exactly once even when several submits race.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('account_tokens', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    t.string('purpose', 20).notNullable();
    idString(knex, t, 'token_hash', 64).notNullable().unique();
    t.string('email', 254).notNullable();
    t.integer('user_id').unsigned().nullable().references('id').inTable('users').onDelete('CASCADE');
    instant(t, 'expires_at').notNullable();
    instant(t, 'used_at').nullable();
    instant(t, 'created_at').notNullable();
    t.index(['purpose', 'email']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('account_tokens');
}
