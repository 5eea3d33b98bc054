// Reading CSV files people upload (RFC 4180): quotes, doubled quotes, line breaks inside quotes,
// CRLF / LF / CR line ends, a byte-order mark, spreadsheet row numbers, and hard size and row caps.
import { expect } from 'chai';
import { CsvError, readCsv } from '../src/core/csv-read.ts';
import { csvRow } from '../src/core/csv.ts';

const fields = (text: string) => readCsv(text).map((r) => r.fields);
const rows = (text: string) => readCsv(text).map((r) => r.row);

function csvErrorOf(fn: () => unknown): CsvError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CsvError) return err;
    throw err;
  }
  throw new Error('expected a CsvError');
}

describe('reading CSV', () => {
  it('splits plain records on commas and line ends', () => {
    expect(fields('name,email\nJane,jane@example.com\n')).to.deep.equal([
      ['name', 'email'],
      ['Jane', 'jane@example.com'],
    ]);
  });

  it('reads CRLF, LF and lone CR line ends alike, with or without a final line end', () => {
    const expected = [['a', 'b'], ['1', '2'], ['3', '4']];
    expect(fields('a,b\r\n1,2\r\n3,4\r\n')).to.deep.equal(expected);
    expect(fields('a,b\n1,2\n3,4')).to.deep.equal(expected);
    expect(fields('a,b\r1,2\r3,4\r')).to.deep.equal(expected);
    expect(fields('a,b\r\n1,2\n3,4\r')).to.deep.equal(expected);
  });

  it('drops a UTF-8 byte-order mark, so the first column is named as written', () => {
    expect(fields('\uFEFFname,email\r\nZoë,z@example.com')).to.deep.equal([['name', 'email'], ['Zoë', 'z@example.com']]);
  });

  it('keeps commas, doubled quotes and line breaks inside quoted values', () => {
    const text = 'name,address\r\n"Smith, ""Jo""","Damrak 1\r\nAmsterdam"\r\n"",x\r\n';
    expect(fields(text)).to.deep.equal([
      ['name', 'address'],
      ['Smith, "Jo"', 'Damrak 1\r\nAmsterdam'],
      ['', 'x'],
    ]);
  });

  it('reads back what the CSV exporter writes', () => {
    const cells = ['Ann, "the" Example', 'line one\nline two', 'Zoë 東京 🙂', ''];
    expect(fields(csvRow(cells) + csvRow(['a', 'b', 'c', 'd']))).to.deep.equal([cells, ['a', 'b', 'c', 'd']]);
  });

  it('keeps empty fields, including a trailing one', () => {
    expect(fields('a,,c,\n,,,\n')).to.deep.equal([['a', '', 'c', ''], ['', '', '', '']]);
  });

  it('numbers records as spreadsheet rows: blank lines counted, a quoted line break not', () => {
    const text = 'h\n\nfirst\n"two\nlines"\n\r\n\nlast\n';
    expect(fields(text)).to.deep.equal([['h'], ['first'], ['two\nlines'], ['last']]);
    expect(rows(text)).to.deep.equal([1, 3, 4, 7]);
  });

  it('refuses a quoted value that is never closed, naming the row it starts on', () => {
    const err = csvErrorOf(() => readCsv('name\nok\n"open,\nmore\n'));
    expect(err.code).to.equal('unterminated_quote');
    expect(err.row).to.equal(3);
  });

  it('refuses text after a closing quote and a quote inside an unquoted value', () => {
    const after = csvErrorOf(() => readCsv('a,b\n"x"y,2\n'));
    expect([after.code, after.row]).to.deep.equal(['bad_quote', 2]);
    const inside = csvErrorOf(() => readCsv('a,b\n1,2\n3,ab"c\n'));
    expect([inside.code, inside.row]).to.deep.equal(['bad_quote', 3]);
  });

  it('refuses text over the byte cap before reading it (bytes, not characters)', () => {
    const text = 'é'.repeat(600); // 1,200 bytes in UTF-8
    expect(readCsv(text, { maxBytes: 1200 })).to.have.length(1);
    expect(csvErrorOf(() => readCsv(text, { maxBytes: 1199 })).code).to.equal('too_large');
  });

  it('stops at the record cap; blank lines do not count toward it', () => {
    expect(readCsv('h\n1\n\n\n2\n', { maxRecords: 3 })).to.have.length(3);
    const err = csvErrorOf(() => readCsv('h\n1\n2\n3\n', { maxRecords: 3 }));
    expect(err.code).to.equal('too_many_rows');
    expect(err.row).to.equal(4);
  });

  it('reads an empty text as no records', () => {
    expect(readCsv('')).to.deep.equal([]);
    expect(readCsv('\r\n\n')).to.deep.equal([]);
  });
});
