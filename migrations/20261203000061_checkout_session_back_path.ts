import type { Knex } from 'knex';

/**
 * `back_path`: the pay page a checkout started from (`/acme/summer-sale?c=…`, `/r/<token>`, `/acme`),
 * so the card page's "Cancel and go back" returns there, with what the customer typed.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('checkout_sessions', (t) => {
    t.string('back_path', 512).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('checkout_sessions', (t) => t.dropColumn('back_path'));
}
