/**
 * Customers from a CSV file, all or nothing. Every row is held to the rules of the customer form
 * (validateCustomer); if any row is wrong nothing is imported and every problem is reported with its
 * spreadsheet row (the header is row 1), the column and what to fix. Otherwise all rows are created
 * in one transaction.
 */
import { AppError } from '../../core/errors.ts';
import { CsvError, readCsv } from '../../core/csv-read.ts';
import { customerCreateSchema } from './schemas.ts';
import { parseAddresses, validateCustomer, type CustomerService, type ValidCustomer } from './service.ts';

export const IMPORT_MAX_ROWS = 5_000;
export const IMPORT_MAX_BYTES = 2 * 1024 * 1024;
export const IMPORT_COLUMNS = ['name', 'email', 'phone', 'country', 'address', 'tags'] as const;

/** One thing to fix. `row` 0 is about the whole file; `column` '' about the whole row. */
export interface ImportProblem {
  row: number;
  column: string;
  code: string;
  message: string;
}

export type ImportOutcome = { ok: true; imported: number } | { ok: false; problems: ImportProblem[] };

const EMAIL_TAKEN = 'A customer with this email address already exists.';

const fileProblem = (code: string, message: string, row = 0): ImportOutcome => ({ ok: false, problems: [{ row, column: '', code, message }] });

/** Tags in one cell: "VIP; Newsletter" or "VIP|Newsletter", each name once (case-insensitively). */
function tagCell(cell: string): string[] {
  const seen = new Set<string>();
  return cell
    .split(/[;|]/)
    .map((s) => s.trim())
    .filter((s) => s && !seen.has(s.toLowerCase()) && seen.add(s.toLowerCase()));
}

/** A validation field (`tags.3`, `phone`, `addresses.ntfy_topic`) → the CSV column it came from. */
const columnOf = (field: string): string => (field.startsWith('addresses.') ? field.slice('addresses.'.length) : field.split('.')[0]);

/**
 * Checks the whole file, then imports it in one transaction. `defaultCountry` (ISO 3166-1 alpha-2)
 * reads phone numbers without + on rows whose `country` cell is empty.
 */
export async function importCustomers(customers: CustomerService, merchantKey: number, text: string, opts: { defaultCountry?: string } = {}): Promise<ImportOutcome> {
  if (!text.trim()) return fileProblem('empty_file', 'Paste the CSV text or choose a file first.');
  let records;
  try {
    records = readCsv(text, { maxBytes: IMPORT_MAX_BYTES, maxRecords: IMPORT_MAX_ROWS + 1 });
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    if (err.code === 'too_many_rows') return fileProblem(err.code, `The file has more than ${IMPORT_MAX_ROWS.toLocaleString('en')} customers. Split it into files of at most ${IMPORT_MAX_ROWS.toLocaleString('en')} rows.`);
    return fileProblem(err.code, err.message, err.row);
  }
  const [header, ...rows] = records;
  if (!header) return fileProblem('empty_file', 'Paste the CSV text or choose a file first.');

  // The header: known columns in any order and case, each once, `name` required. Besides the fixed
  // columns, one per custom address kind an installed channel declares (e.g. `ntfy_topic`).
  const kinds = customers.addressKinds();
  const allColumns: string[] = [...IMPORT_COLUMNS, ...kinds.map((k) => k.kind)];
  const problems: ImportProblem[] = [];
  const columns: (string | null)[] = [];
  for (const raw of header.fields) {
    const name = raw.trim().toLowerCase();
    const known = allColumns.find((c) => c.toLowerCase() === name) ?? null;
    if (!name) problems.push({ row: header.row, column: '', code: 'empty_column', message: 'A column has no name. Name every column in the first row, or remove the empty one.' });
    else if (!known) problems.push({ row: header.row, column: raw.trim(), code: 'unknown_column', message: `Unknown column “${raw.trim()}”. The columns are: ${allColumns.join(', ')}.` });
    else if (columns.includes(known)) problems.push({ row: header.row, column: known, code: 'duplicate_column', message: `The column “${known}” appears twice.` });
    columns.push(known);
  }
  if (!columns.includes('name') && !problems.some((p) => p.code === 'empty_column')) {
    problems.push({ row: header.row, column: 'name', code: 'missing_column', message: `The first row must be a header with at least a “name” column, such as: ${IMPORT_COLUMNS.join(',')}` });
  }
  if (problems.length) return { ok: false, problems };

  const valid: { row: number; customer: ValidCustomer }[] = [];
  const firstRowOfEmail = new Map<string, number>();
  for (const record of rows) {
    // A row of empty cells (",,,,", as spreadsheets sometimes write) is a blank row.
    if (record.fields.every((f) => !f.trim())) continue;
    if (record.fields.length > columns.length) {
      problems.push({ row: record.row, column: '', code: 'too_many_values', message: `This row has ${record.fields.length} values but the header has ${columns.length} columns. Put values that contain commas in quotes.` });
      continue;
    }
    const cell = (c: string) => {
      const i = columns.indexOf(c);
      return i >= 0 ? (record.fields[i] ?? '') : '';
    };
    const country = cell('country').trim() || opts.defaultCountry;
    const raw = {
      name: cell('name'),
      email: cell('email'),
      phone: cell('phone'),
      ...(country ? { country } : {}),
      address: cell('address'),
      tags: tagCell(cell('tags')),
    };
    const v = validateCustomer(customerCreateSchema, raw);
    const given = Object.fromEntries(kinds.map((k) => [k.kind, cell(k.kind)]).filter(([, value]) => value.trim()));
    const a = parseAddresses(given, kinds);
    if (!v.ok || a.errors.length) {
      const seen = new Set<string>();
      for (const e of [...(v.ok ? [] : v.errors), ...a.errors]) {
        const column = columnOf(e.field);
        // One message per cell: the first is the one to fix.
        if (seen.has(column)) continue;
        seen.add(column);
        problems.push({ row: record.row, column, code: e.code, message: e.message });
      }
      continue;
    }
    const email = v.input.email;
    if (email) {
      const first = firstRowOfEmail.get(email);
      if (first !== undefined) {
        problems.push({ row: record.row, column: 'email', code: 'duplicate_email', message: `The same email address as row ${first}. Each customer can be in the file once.` });
        continue;
      }
      firstRowOfEmail.set(email, record.row);
    }
    const addresses = Object.fromEntries(Object.entries(a.values ?? {}).filter((e): e is [string, string] => e[1] !== null));
    valid.push({ row: record.row, customer: { input: v.input, phone: v.phone, addresses } });
  }
  // Emails existing customers have, reported with the other problems (createMany checks again, in its transaction).
  const taken = await customers.emailsTaken(merchantKey, [...firstRowOfEmail.keys()]);
  for (const v of valid) {
    if (v.customer.input.email && taken.has(v.customer.input.email)) problems.push({ row: v.row, column: 'email', code: 'email_taken', message: EMAIL_TAKEN });
  }
  problems.sort((a, b) => a.row - b.row);
  if (problems.length) return { ok: false, problems };
  if (!valid.length) return fileProblem('no_rows', 'The file has a header but no customers below it.', header.row);

  try {
    return { ok: true, imported: await customers.createMany(merchantKey, valid.map((v) => v.customer)) };
  } catch (err) {
    if (!(err instanceof AppError) || err.code !== 'email_taken') throw err;
    // `<index>.email` → the row it came from.
    return {
      ok: false,
      problems: err.errors.map((e) => ({ row: valid[Number(e.field.split('.')[0])].row, column: 'email', code: e.code, message: e.message })),
    };
  }
}
