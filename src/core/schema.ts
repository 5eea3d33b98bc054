// Column helpers shared by migrations, so both databases get the same shapes.
import type { Knex } from 'knex';

export function mysqlKnex(knex: Knex): boolean {
  return knex.client.config.client === 'mysql2';
}

/** utf8mb4 with an explicit collation on MySQL/MariaDB (knex would otherwise use the connection default). */
export function tableOptions(knex: Knex, t: Knex.CreateTableBuilder): void {
  if (mysqlKnex(knex)) {
    t.engine('InnoDB');
    t.charset('utf8mb4');
    t.collate('utf8mb4_unicode_ci');
  }
}

/** Case-sensitive string column for random public ids and tokens. */
export function idString(knex: Knex, t: Knex.CreateTableBuilder, name: string, length = 40): Knex.ColumnBuilder {
  const col = t.string(name, length);
  if (mysqlKnex(knex)) col.collate('utf8mb4_bin');
  return col;
}

/** A UTC instant: DATETIME(3) on MySQL; epoch milliseconds on SQLite (knex binds Dates that way). */
export function instant(t: Knex.CreateTableBuilder, name: string): Knex.ColumnBuilder {
  return t.datetime(name, { precision: 3 });
}

/** Large text: MEDIUMTEXT on MySQL (TEXT caps at 64 KB), TEXT on SQLite. */
export function longText(t: Knex.CreateTableBuilder, name: string): Knex.ColumnBuilder {
  return t.text(name, 'mediumtext');
}
