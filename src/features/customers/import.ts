/**
 * Customers from a CSV file, all or nothing. Every row is held to the rules of the customer form
 * (validateCustomer); if any row is wrong nothing is imported and every problem is reported with its
 * spreadsheet row (the header is row 1), the column and what to fix. Otherwise all rows are created
 * in one transaction.
 */
import { AppError } from '../../core/errors.ts';
import { byRow, fileProblem, readCsvImport, rowProblemsFrom, type ImportProblem } from '../../core/csv-import.ts';
import { customerCreateSchema } from './schemas.ts';
import { parseAddresses, validateCustomer, type CustomerService, type ValidCustomer } from './service.ts';

export type { ImportProblem } from '../../core/csv-import.ts';

export const IMPORT_MAX_ROWS = 5_000;
export const IMPORT_MAX_BYTES = 2 * 1024 * 1024;
export const IMPORT_COLUMNS = ['name', 'email', 'phone', 'country', 'address', 'tags'] as const;

export type ImportOutcome = { ok: true; imported: number } | { ok: false; problems: ImportProblem[] };

const EMAIL_TAKEN = 'A customer with this email address already exists.';

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
  // The header: known columns in any order and case, each once, `name` required. Besides the fixed
  // columns, one per custom address kind an installed channel declares (e.g. `ntfy_topic`).
  const kinds = customers.addressKinds();
  const read = readCsvImport(text, {
    columns: [...IMPORT_COLUMNS, ...kinds.map((k) => k.kind)],
    noun: 'customers',
    maxRows: IMPORT_MAX_ROWS,
    maxBytes: IMPORT_MAX_BYTES,
    checkHeader: (present, row) =>
      present.has('name') ? [] : [{ row, column: 'name', code: 'missing_column', message: `The first row must be a header with at least a “name” column, such as: ${IMPORT_COLUMNS.join(',')}` }],
  });
  if (!read.ok) return read;
  const problems: ImportProblem[] = [...read.rowProblems];

  const valid: { row: number; customer: ValidCustomer }[] = [];
  const firstRowOfEmail = new Map<string, number>();
  for (const record of read.rows) {
    const cell = record.cell;
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
      problems.push(...rowProblemsFrom(record.row, [...(v.ok ? [] : v.errors), ...a.errors], columnOf));
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
  if (problems.length) return { ok: false, problems: byRow(problems) };
  if (!valid.length) return fileProblem('no_rows', 'The file has a header but no customers below it.', read.headerRow);

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
