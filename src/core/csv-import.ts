/**
 * What every all-or-nothing CSV import shares (customers, payment requests): reading the file with a
 * size and row cap, a header row of known columns (any order and case, each once), blank rows
 * skipped, rows with more values than columns refused, and problems reported by spreadsheet row (the
 * header is row 1), column and what to fix. Each import then holds its rows to its own rules.
 */
import { CsvError, readCsv } from './csv-read.ts';

/** One thing to fix. `row` 0 is about the whole file; `column` '' about the whole row. */
export interface ImportProblem {
  row: number;
  column: string;
  code: string;
  message: string;
}

/** One data row: its spreadsheet row number and its cell under a (known) column, '' when absent. */
export interface CsvImportRow {
  row: number;
  cell(column: string): string;
  /** Whether the header has this column. */
  has(column: string): boolean;
}

export interface CsvImportSpec {
  /** The known columns, as documented (matched case-insensitively). */
  columns: readonly string[];
  /** What one row is, in messages: "customers", "payment requests". */
  noun: string;
  maxRows: number;
  maxBytes: number;
  /** Problems with the set of columns the header has (e.g. a required one missing), or none. */
  checkHeader?: (present: ReadonlySet<string>, headerRow: number) => ImportProblem[];
}

export type CsvImportRead = { ok: true; headerRow: number; rows: CsvImportRow[]; rowProblems: ImportProblem[] } | { ok: false; problems: ImportProblem[] };

export const fileProblem = (code: string, message: string, row = 0): { ok: false; problems: ImportProblem[] } => ({ ok: false, problems: [{ row, column: '', code, message }] });

const EMPTY = 'Paste the CSV text or choose a file first.';

/**
 * Reads an import file: the header, then every non-blank row. Problems with the file or the header
 * stop here; a row with more values than the header has columns is a problem of that row, reported
 * with the rest (`rowProblems`), and left out of `rows`.
 */
export function readCsvImport(text: string, spec: CsvImportSpec): CsvImportRead {
  if (!text.trim()) return fileProblem('empty_file', EMPTY);
  let records;
  try {
    records = readCsv(text, { maxBytes: spec.maxBytes, maxRecords: spec.maxRows + 1 });
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    const max = spec.maxRows.toLocaleString('en');
    if (err.code === 'too_many_rows') return fileProblem(err.code, `The file has more than ${max} ${spec.noun}. Split it into files of at most ${max} rows.`);
    return fileProblem(err.code, err.message, err.row);
  }
  const [header, ...dataRecords] = records;
  if (!header) return fileProblem('empty_file', EMPTY);

  const problems: ImportProblem[] = [];
  const columns: (string | null)[] = [];
  for (const raw of header.fields) {
    const name = raw.trim().toLowerCase();
    const known = spec.columns.find((c) => c.toLowerCase() === name) ?? null;
    if (!name) problems.push({ row: header.row, column: '', code: 'empty_column', message: 'A column has no name. Name every column in the first row, or remove the empty one.' });
    else if (!known) problems.push({ row: header.row, column: raw.trim(), code: 'unknown_column', message: `Unknown column “${raw.trim()}”. The columns are: ${spec.columns.join(', ')}.` });
    else if (columns.includes(known)) problems.push({ row: header.row, column: known, code: 'duplicate_column', message: `The column “${known}” appears twice.` });
    columns.push(known);
  }
  const present = new Set(columns.filter((c): c is string => c !== null));
  if (spec.checkHeader && !problems.some((p) => p.code === 'empty_column')) problems.push(...spec.checkHeader(present, header.row));
  if (problems.length) return { ok: false, problems };

  const index = new Map<string, number>();
  columns.forEach((c, i) => c !== null && !index.has(c) && index.set(c, i));
  const rows: CsvImportRow[] = [];
  const rowProblems: ImportProblem[] = [];
  for (const record of dataRecords) {
    // A row of empty cells (",,,,", as spreadsheets sometimes write) is a blank row.
    if (record.fields.every((f) => !f.trim())) continue;
    if (record.fields.length > columns.length) {
      rowProblems.push({ row: record.row, column: '', code: 'too_many_values', message: `This row has ${record.fields.length} values but the header has ${columns.length} columns. Put values that contain commas in quotes.` });
      continue;
    }
    const fields = record.fields;
    rows.push({
      row: record.row,
      cell: (c) => {
        const i = index.get(c);
        return i === undefined ? '' : (fields[i] ?? '');
      },
      has: (c) => index.has(c),
    });
  }
  return { ok: true, headerRow: header.row, rows, rowProblems };
}

/**
 * A row's validation errors as problems, one per column (the first is the one to fix). `columnOf`
 * names the CSV column a validation field came from.
 */
export function rowProblemsFrom(row: number, errors: readonly { field: string; code: string; message: string }[], columnOf: (field: string) => string): ImportProblem[] {
  const seen = new Set<string>();
  const out: ImportProblem[] = [];
  for (const e of errors) {
    const column = columnOf(e.field);
    if (seen.has(column)) continue;
    seen.add(column);
    out.push({ row, column, code: e.code, message: e.message });
  }
  return out;
}

/** Problems in file order (row by row; a stable sort keeps each row's own order). */
export const byRow = (problems: ImportProblem[]): ImportProblem[] => problems.sort((a, b) => a.row - b.row);
