import type { Knex } from 'knex';

/**
 * A payment request's line items (optional): what the amount is made of, as the merchant listed it —
 * `[{ description, quantity, unit_amount }]` as JSON text. The amount is their sum; the pay page and
 * the dashboard list them.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => {
    t.text('line_items').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => t.dropColumn('line_items'));
}
