/**
 * CSV for spreadsheets: RFC 4180 quoting, CRLF line ends, a UTF-8 byte-order mark (so Excel reads
 * non-ASCII text as UTF-8), and formula neutralisation against CSV injection. Exports are streamed:
 * rows are written a buffer at a time, waiting for the socket to drain, and stop when the client goes.
 *
 * The quoting is a dozen lines written here rather than a dependency: what matters (and what no
 * library does for us by default) is the neutralisation, which must run on every text cell.
 */
import type { Response } from 'express';

/** A cell as exports hand it over: text (neutralised), a number we computed (written as is), or empty. */
export type CsvCell = string | number | null | undefined;

export const CSV_BOM = '\uFEFF';
export const CSV_CONTENT_TYPE = 'text/csv; charset=utf-8';

/**
 * Characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection"): such a cell
 * gets a leading apostrophe, which spreadsheets take as "this is text". The rule has no exceptions —
 * a lone "-" or a negative-looking number in a text cell is prefixed too — so it is simple to trust.
 * Numbers passed as `number` are written unchanged: they are ours, never a customer's text. Amounts
 * are written as decimal strings ("12.50") and pass through the rule untouched because payments are
 * never negative; were a negative amount ever exported, it would be prefixed — safe, if less tidy.
 */
const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

export function neutralise(text: string): string {
  return FORMULA_START.test(text) ? `'${text}` : text;
}

/** One cell, neutralised and quoted as RFC 4180 asks (quotes doubled inside a quoted field). */
export function csvCell(value: CsvCell): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return String(value);
  const text = neutralise(value);
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One record with its CRLF. */
export function csvRow(cells: readonly CsvCell[]): string {
  return cells.map(csvCell).join(',') + '\r\n';
}

/** Bytes gathered before one write to the socket: small enough to keep memory flat, big enough to be cheap. */
const FLUSH_AT = 64 * 1024;

/**
 * Streams a CSV download: headers, BOM and header row, then every row the source yields (chunks of
 * records, e.g. a database page at a time). Waits for 'drain' whenever the socket's buffer is full,
 * so a slow client slows the database reads instead of filling memory; when the client disconnects
 * the source is closed (its generator's `finally` runs) and nothing more is read.
 * Nothing is sent before the first write, so a source that fails at once (the database is down)
 * still gets the ordinary error page; a failure later can only cut the download short.
 * Resolves true when the whole file was sent, false when the client left first.
 */
export async function streamCsv<T>(
  res: Response,
  opts: { filename: string; header: readonly string[]; source: AsyncIterable<readonly T[]>; row: (item: T) => readonly CsvCell[] },
): Promise<boolean> {
  let gone = false;
  const onClose = () => {
    gone = !res.writableFinished;
  };
  res.once('close', onClose);
  let started = false;
  const send = (text: string) => {
    if (!started) {
      started = true;
      res.status(200);
      res.setHeader('Content-Type', CSV_CONTENT_TYPE);
      res.setHeader('Content-Disposition', `attachment; filename="${opts.filename.replace(/[^\w.-]/g, '_')}"`);
      res.setHeader('Cache-Control', 'no-store');
    }
    return write(res, text, () => gone);
  };
  try {
    let buffer = CSV_BOM + csvRow(opts.header);
    for await (const chunk of opts.source) {
      for (const item of chunk) {
        buffer += csvRow(opts.row(item));
        if (buffer.length < FLUSH_AT) continue;
        if (!(await send(buffer))) return false;
        buffer = '';
      }
      // A gone client is noticed between database reads too, not only when a write blocks.
      if (gone) return false;
    }
    if (buffer && !(await send(buffer))) return false;
    res.end();
    return true;
  } finally {
    res.off('close', onClose);
  }
}

/** Writes, then waits for 'drain' if the buffer is full; false once the client has disconnected. */
async function write(res: Response, text: string, gone: () => boolean): Promise<boolean> {
  if (gone() || res.destroyed) return false;
  if (res.write(text)) return true;
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
  return !gone() && !res.destroyed;
}
