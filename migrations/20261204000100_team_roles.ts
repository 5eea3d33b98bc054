import type { Knex } from 'knex';
import { mysqlKnex } from '../src/core/schema.ts';

/**
 * Team members with roles (owner, admin, agent, viewer) and who made what.
 *
 * - users: an agent's `amount_cap` (minor units of the merchant's currency; null = no cap) and
 *   `removed_at` (a removed member keeps their row, so what they made still names them).
 * - api_keys: a `role` too (admin, agent, viewer) and a cap; existing keys keep full access (`admin`).
 * - account_tokens: a team invitation names the merchant, the role, the cap and who invited.
 * - links, customers, refunds: `created_by_user_id` (and for customers and refunds the API key, as
 *   links and payment requests already record it). Links and payment requests made on the dashboard
 *   before this are credited to the merchant's owner (the only user there was).
 */
export const config = { transaction: false };

/** Adds a nullable integer column referencing `target`. In place on SQLite (knex would rebuild the table, see 20261203000030). */
async function addRef(knex: Knex, table: string, column: string, target: string, onDelete: 'SET NULL' | 'CASCADE' = 'SET NULL'): Promise<void> {
  if (mysqlKnex(knex)) {
    await knex.schema.alterTable(table, (t) => {
      t.integer(column).unsigned().nullable().references('id').inTable(target).onDelete(onDelete);
    });
  } else {
    await knex.raw(`alter table \`${table}\` add column \`${column}\` integer null references \`${target}\` (\`id\`) on delete ${onDelete.toLowerCase()}`);
  }
}

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.bigInteger('amount_cap').nullable();
    t.datetime('removed_at', { precision: 3 }).nullable();
    t.index(['merchant_id', 'role'], 'users_merchant_role_index');
  });
  await knex.schema.alterTable('api_keys', (t) => {
    t.string('role', 16).notNullable().defaultTo('admin');
    t.bigInteger('amount_cap').nullable();
  });
  await addRef(knex, 'account_tokens', 'merchant_id', 'merchants', 'CASCADE');
  await addRef(knex, 'account_tokens', 'invited_by_user_id', 'users');
  await knex.schema.alterTable('account_tokens', (t) => {
    t.string('role', 16).nullable();
    t.bigInteger('amount_cap').nullable();
    t.index(['merchant_id', 'purpose'], 'account_tokens_merchant_index');
  });
  await addRef(knex, 'links', 'created_by_user_id', 'users');
  await addRef(knex, 'customers', 'created_by_user_id', 'users');
  await addRef(knex, 'customers', 'api_key_id', 'api_keys');
  await addRef(knex, 'refunds', 'created_by_user_id', 'users');
  await addRef(knex, 'refunds', 'api_key_id', 'api_keys');
  await knex.schema.alterTable('links', (t) => {
    // An agent's own links (and, through them, payments): from the index alone.
    t.index(['merchant_id', 'created_by_user_id', 'deleted_at'], 'links_merchant_creator_index');
  });
  await knex.schema.alterTable('customers', (t) => {
    t.index(['merchant_id', 'created_by_user_id'], 'customers_merchant_creator_index');
    t.index(['merchant_id', 'api_key_id'], 'customers_merchant_key_index');
  });
  await knex.schema.alterTable('payment_requests', (t) => {
    t.index(['merchant_id', 'created_by_user_id'], 'payment_requests_merchant_creator_index');
  });
  // What was made on the dashboard so far was made by the owner (one user per merchant until now).
  const owner = knex('users').min('id').whereRaw("users.merchant_id = ??.merchant_id and users.role = 'owner'", ['links']);
  await knex('links').whereIn('source', ['dashboard', 'text_to_pay']).whereNull('created_by_user_id').update({ created_by_user_id: owner });
  const requestOwner = knex('users').min('id').whereRaw("users.merchant_id = ??.merchant_id and users.role = 'owner'", ['payment_requests']);
  await knex('payment_requests').whereIn('source', ['dashboard', 'text_to_pay']).whereNull('created_by_user_id').update({ created_by_user_id: requestOwner });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => t.dropIndex(['merchant_id', 'created_by_user_id'], 'payment_requests_merchant_creator_index'));
  await knex.schema.alterTable('customers', (t) => {
    t.dropIndex(['merchant_id', 'created_by_user_id'], 'customers_merchant_creator_index');
    t.dropIndex(['merchant_id', 'api_key_id'], 'customers_merchant_key_index');
  });
  await knex.schema.alterTable('links', (t) => t.dropIndex(['merchant_id', 'created_by_user_id', 'deleted_at'], 'links_merchant_creator_index'));
  await knex.schema.alterTable('account_tokens', (t) => t.dropIndex(['merchant_id', 'purpose'], 'account_tokens_merchant_index'));
  for (const [table, column] of [['refunds', 'api_key_id'], ['refunds', 'created_by_user_id'], ['customers', 'api_key_id'], ['customers', 'created_by_user_id'], ['links', 'created_by_user_id'], ['account_tokens', 'invited_by_user_id'], ['account_tokens', 'merchant_id']] as const) {
    await knex.schema.alterTable(table, (t) => {
      t.dropForeign([column]);
      t.dropColumn(column);
    });
  }
  await knex.schema.alterTable('account_tokens', (t) => {
    t.dropColumn('role');
    t.dropColumn('amount_cap');
  });
  await knex.schema.alterTable('api_keys', (t) => {
    t.dropColumn('role');
    t.dropColumn('amount_cap');
  });
  await knex.schema.alterTable('users', (t) => {
    t.dropIndex(['merchant_id', 'role'], 'users_merchant_role_index');
    t.dropColumn('amount_cap');
    t.dropColumn('removed_at');
  });
}
