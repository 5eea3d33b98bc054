/**
 * Reads CSV as people's spreadsheets write it (RFC 4180): comma-separated fields, double-quoted
 * fields that may hold commas, quotes (doubled: "") and line breaks, records ended by CRLF, LF or a
 * lone CR (old Mac exports), and an optional UTF-8 byte-order mark. A record's `row` is the row a
 * spreadsheet shows: the first record is row 1, blank lines are skipped but counted, and a value with
 * line breaks inside its quotes is still one row.
 *
 * It is a dozen states written here rather than a dependency because imports need what parsers
 * rarely give together: the row number of every record, a hard size cap checked before any work,
 * a record cap that stops reading early, and errors with codes instead of best guesses about a
 * stray quote.
 */

export type CsvErrorCode = 'too_large' | 'too_many_rows' | 'unterminated_quote' | 'bad_quote';

export class CsvError extends Error {
  constructor(
    readonly code: CsvErrorCode,
    message: string,
    /** The spreadsheet row where the problem is (0 when it is about the whole file). */
    readonly row: number,
  ) {
    super(message);
    this.name = 'CsvError';
  }
}

export interface CsvRecord {
  /** The spreadsheet row: 1 for the first record, blank lines counted. */
  row: number;
  fields: string[];
}

export interface CsvReadOptions {
  /** Refuse text larger than this many UTF-8 bytes (checked first). */
  maxBytes?: number;
  /** Refuse more (non-blank) records than this, header included; reading stops at the first extra one. */
  maxRecords?: number;
}

const BOM = '\uFEFF';

const formatBytes = (n: number) => (n >= 1024 * 1024 ? `${Math.round((n / (1024 * 1024)) * 10) / 10} MB` : `${Math.ceil(n / 1024)} KB`);

export function readCsv(input: string, opts: CsvReadOptions = {}): CsvRecord[] {
  if (opts.maxBytes !== undefined && Buffer.byteLength(input, 'utf8') > opts.maxBytes) {
    throw new CsvError('too_large', `The file is larger than ${formatBytes(opts.maxBytes)}. Split it into smaller files.`, 0);
  }
  const text = input.startsWith(BOM) ? input.slice(1) : input;
  const records: CsvRecord[] = [];
  let row = 1;
  let fields: string[] = [];
  let field = '';
  /** A record has begun: something other than a line end was seen (a blank line is no record). */
  let started = false;
  let i = 0;
  const n = text.length;

  const endRecord = () => {
    if (started) {
      fields.push(field);
      if (opts.maxRecords !== undefined && records.length >= opts.maxRecords) {
        throw new CsvError('too_many_rows', `The file has more than ${opts.maxRecords.toLocaleString('en')} rows. Split it into smaller files.`, row);
      }
      records.push({ row, fields });
    }
    fields = [];
    field = '';
    started = false;
  };

  while (i < n) {
    const c = text[i];
    if (c === '"' && field === '') {
      // A quoted field: up to the closing quote, "" being one quote. Line breaks inside are content.
      started = true;
      i++;
      let closed = false;
      while (i < n) {
        const q = text.indexOf('"', i);
        if (q < 0) break;
        field += text.slice(i, q);
        if (text[q + 1] === '"') {
          field += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        closed = true;
        break;
      }
      if (!closed) throw new CsvError('unterminated_quote', 'A quoted value is never closed: a closing " is missing.', row);
      // After the closing quote only a separator or a line end may follow.
      const next = text[i];
      if (i < n && next !== ',' && next !== '\n' && next !== '\r') {
        throw new CsvError('bad_quote', 'Unexpected text after a closing quote. Put the whole value in quotes and double any quote inside it ("").', row);
      }
      continue;
    }
    if (c === ',') {
      fields.push(field);
      field = '';
      started = true;
      i++;
      continue;
    }
    if (c === '\r' || c === '\n') {
      endRecord();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      row++;
      continue;
    }
    if (c === '"') {
      // A quote inside an unquoted value (ab"c): refused rather than guessed at.
      throw new CsvError('bad_quote', 'A quote (") inside a value that does not start with one. Put the whole value in quotes and double the quote inside it ("").', row);
    }
    // Plain text up to the next special character, in one slice.
    let j = i + 1;
    while (j < n) {
      const d = text[j];
      if (d === ',' || d === '\n' || d === '\r' || d === '"') break;
      j++;
    }
    field += text.slice(i, j);
    started = true;
    i = j;
  }
  endRecord();
  return records;
}
