import type { Knex } from 'knex';
import { instant } from '../src/core/schema.ts';

/**
 * When a payment request was paid in full and when it expired unpaid: each set once, by the
 * conditional UPDATE that also emits `payment_request.paid` / `payment_request.expired`, so a handler
 * that runs twice emits once.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => {
    instant(t, 'paid_at').nullable();
    instant(t, 'expired_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => {
    t.dropColumn('paid_at');
    t.dropColumn('expired_at');
  });
}
