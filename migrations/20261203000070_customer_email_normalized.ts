import type { Knex } from 'knex';
import { mysqlKnex } from '../src/core/schema.ts';

/**
 * One customer per email address per merchant, whatever its case: `email_normalized` holds the
 * trimmed, lowercased email of a live customer, and a unique index on (merchant_id, email_normalized)
 * enforces it (NULLs never clash: no email, deleted customers). Binary collation on MySQL/MariaDB, so
 * the index compares exactly what the application normalised (utf8mb4_unicode_ci would also fold
 * accents: é = e).
 *
 * Existing duplicates are kept, nothing is deleted or merged: the oldest live customer with an address
 * gets the normalised column, the later ones keep their email but leave it NULL (so they are still
 * shown, sent to and editable; changing such a customer's email is checked like any other). Each
 * duplicate is logged (merchant key, customer keys), for the merchant to merge by hand if they want.
 */
const CHUNK = 500;

const normalize = (email: string) => email.trim().toLowerCase();

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('customers', (t) => {
    const col = t.string('email_normalized', 254).nullable();
    if (mysqlKnex(knex)) col.collate('utf8mb4_bin');
  });

  const log = (knex.client as { logger?: { warn?: (m: string) => void } }).logger;
  const merchants = (await knex('customers').whereNotNull('email').whereNull('deleted_at').distinct('merchant_id')) as { merchant_id: number }[];
  let duplicates = 0;
  for (const { merchant_id: merchantKey } of merchants) {
    const rows = (await knex('customers').where({ merchant_id: merchantKey }).whereNotNull('email').whereNull('deleted_at').orderBy('id').select('id', 'email')) as { id: number; email: string }[];
    const keeper = new Map<string, number>();
    const later = new Map<string, number[]>();
    const writes: { id: number; value: string }[] = [];
    for (const r of rows) {
      const value = normalize(r.email);
      if (!value) continue;
      if (keeper.has(value)) later.set(value, [...(later.get(value) ?? []), Number(r.id)]);
      else {
        keeper.set(value, Number(r.id));
        writes.push({ id: Number(r.id), value });
      }
    }
    for (let i = 0; i < writes.length; i += CHUNK) {
      const chunk = writes.slice(i, i + CHUNK);
      await knex('customers')
        .whereIn('id', chunk.map((w) => w.id))
        .update({ email_normalized: knex.raw(`CASE id ${chunk.map(() => 'WHEN ? THEN ?').join(' ')} END`, chunk.flatMap((w) => [w.id, w.value])) });
    }
    for (const [value, ids] of later) {
      duplicates += ids.length;
      const message = `customers: merchant ${merchantKey} has ${ids.length + 1} live customers with the email ${value}; customer ${keeper.get(value)} keeps it as the unique one, customers ${ids.join(', ')} keep their email but are left out of the uniqueness check (email_normalized NULL)`;
      if (log?.warn) log.warn(message);
      else console.warn(message);
    }
  }
  if (duplicates && log?.warn) log.warn(`customers: ${duplicates} duplicate customer email${duplicates === 1 ? '' : 's'} kept as they were (see above)`);

  await knex.schema.alterTable('customers', (t) => {
    t.unique(['merchant_id', 'email_normalized'], { indexName: 'customers_merchant_email_normalized_unique' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('customers', (t) => {
    t.dropUnique(['merchant_id', 'email_normalized'], 'customers_merchant_email_normalized_unique');
  });
  // SQLite: its own DROP COLUMN (knex would copy the table, which the foreign keys pointing at it refuse).
  if (mysqlKnex(knex)) await knex.schema.alterTable('customers', (t) => t.dropColumn('email_normalized'));
  else await knex.raw('ALTER TABLE customers DROP COLUMN email_normalized');
}
