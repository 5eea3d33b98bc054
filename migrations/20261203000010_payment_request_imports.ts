import type { Knex } from 'knex';
import { idString, instant, longText, tableOptions } from '../src/core/schema.ts';

/**
 * Payment requests from a CSV file (issue 13, item 6), owned by the requests feature. The file is
 * checked whole when it is posted; an import row then holds its checked rows (`pending`, JSON) until
 * a background job has written them, batch by batch, each batch in one transaction that also moves
 * `created_count` on — so a process that dies mid-way leaves whole batches, and the next run goes on
 * from the count. Each request written names its import (`payment_requests.import_id`).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('request_imports', (t) => {
    tableOptions(knex, t);
    t.increments('id');
    idString(knex, t, 'public_id').notNullable().unique();
    t.integer('merchant_id').unsigned().notNullable().references('id').inTable('merchants').onDelete('CASCADE');
    t.integer('api_key_id').unsigned().nullable().references('id').inTable('api_keys').onDelete('SET NULL');
    // creating → done (every row written or skipped) | failed (the job gave up; `error` says why).
    t.string('state', 16).notNullable();
    t.integer('total').unsigned().notNullable();
    t.integer('created_count').unsigned().notNullable().defaultTo(0);
    // Rows not written because their reference was taken after the check (JSON problems), and how many.
    t.integer('skipped_count').unsigned().notNullable().defaultTo(0);
    t.text('skipped').nullable();
    // Messages the rows ask for (every channel of every row): the send's progress counts towards it.
    t.integer('messages_total').unsigned().notNullable().defaultTo(0);
    // The checked rows still to write (cleared when done).
    longText(t, 'pending').nullable();
    t.string('error', 500).nullable();
    instant(t, 'created_at').notNullable();
    instant(t, 'updated_at').notNullable();
    instant(t, 'finished_at').nullable();
    t.index(['merchant_id', 'created_at']);
  });
  await knex.schema.alterTable('payment_requests', (t) => {
    t.integer('import_id').unsigned().nullable().references('id').inTable('request_imports').onDelete('SET NULL');
    t.index(['import_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('payment_requests', (t) => {
    t.dropForeign(['import_id']);
    t.dropIndex(['import_id']);
    t.dropColumn('import_id');
  });
  await knex.schema.dropTableIfExists('request_imports');
}
