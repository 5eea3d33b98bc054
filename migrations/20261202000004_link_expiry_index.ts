import type { Knex } from 'knex';

/** The expiry sweep walks live links by (active, expires_at) every minute: index it, not scan it. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('links', (t) => {
    t.index(['active', 'expires_at'], 'links_active_expires_at_index');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('links', (t) => {
    t.dropIndex(['active', 'expires_at'], 'links_active_expires_at_index');
  });
}
