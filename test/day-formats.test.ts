/**
 * Dates typed into the dashboard's date filters (issue 14, item 8): ISO always, and the merchant's
 * own day-month-year order (de-DE 31.12.2026, en-US 12/31/2026, en-GB 31/12/2026); anything that
 * names no real day is refused, never guessed at. The API reads ISO only.
 */
import { expect } from 'chai';
import { dayPattern, formatDay, parseDay } from '../src/core/time.ts';
import { readDayRange } from '../src/web/view.ts';

describe('dates typed in the merchant’s format', () => {
  it('reads a day in the locale’s order, with any usual separator', () => {
    expect(parseDay('31.12.2026', 'de-DE')).to.equal('2026-12-31');
    expect(parseDay('12/31/2026', 'en-US')).to.equal('2026-12-31');
    expect(parseDay('31/12/2026', 'en-GB')).to.equal('2026-12-31');
    expect(parseDay('31-12-2026', 'nl-NL')).to.equal('2026-12-31');
    expect(parseDay('2026/12/31', 'ja-JP')).to.equal('2026-12-31');
    // The same digits mean another day elsewhere: 03/04 is 3 April in Britain, 4 March in the US.
    expect(parseDay('03/04/2026', 'en-GB')).to.equal('2026-04-03');
    expect(parseDay('03/04/2026', 'en-US')).to.equal('2026-03-04');
    // People leave out leading zeros, use another separator, or add spaces.
    expect(parseDay('1.3.2026', 'de-DE')).to.equal('2026-03-01');
    expect(parseDay(' 1/3/2026 ', 'de-DE')).to.equal('2026-03-01');
    expect(parseDay('1. 3. 2026', 'de-DE')).to.equal('2026-03-01');
  });

  it('reads ISO in every locale, and only ISO without one (the API)', () => {
    for (const locale of ['de-DE', 'en-US', 'en-GB', 'ja-JP', undefined]) expect(parseDay('2026-12-31', locale), String(locale)).to.equal('2026-12-31');
    expect(parseDay('31/12/2026')).to.equal(null);
    expect(parseDay('2026/12/31')).to.equal(null);
    expect(parseDay('2026-1-5')).to.equal(null);
    expect(parseDay('2026-1-5', 'en-GB')).to.equal('2026-01-05');
  });

  it('refuses what is no day: impossible dates, the wrong order, two-digit years, words', () => {
    expect(parseDay('31.02.2026', 'de-DE')).to.equal(null);
    expect(parseDay('2026-02-30', 'de-DE')).to.equal(null);
    expect(parseDay('2026-02-30')).to.equal(null);
    // A US-ordered date is no day in Germany (month 31).
    expect(parseDay('12/31/2026', 'de-DE')).to.equal(null);
    expect(parseDay('31/12/2026', 'en-US')).to.equal(null);
    expect(parseDay('31.12.26', 'de-DE')).to.equal(null);
    expect(parseDay('99999-01-01', 'en-GB')).to.equal(null);
    expect(parseDay('0999-01-01', 'en-GB')).to.equal(null);
    for (const bad of ['', 'yesterday', '31.12', '2026', '31.12.2026.1', '31..12..2026x', '١٢/٣١/٢٠٢٦']) expect(parseDay(bad, 'de-DE'), bad).to.equal(null);
  });

  it('writes a day and its pattern the locale’s way', () => {
    expect(formatDay('2026-03-01', 'de-DE')).to.equal('01.03.2026');
    expect(formatDay('2026-03-01', 'en-US')).to.equal('03/01/2026');
    expect(formatDay('2026-03-01', 'en-GB')).to.equal('01/03/2026');
    expect(dayPattern('de-DE')).to.equal('dd.mm.yyyy');
    expect(dayPattern('en-US')).to.equal('mm/dd/yyyy');
    // What it writes, it reads back.
    for (const locale of ['de-DE', 'en-US', 'en-GB', 'fr-FR', 'nl-NL', 'ja-JP', 'sv-SE', 'pl-PL']) expect(parseDay(formatDay('2026-01-05', locale), locale), locale).to.equal('2026-01-05');
  });

  it('reads a from–to filter as days, naming a bad one or a backwards range by its field', () => {
    const labels = { from: 'From', to: 'To' };
    expect(readDayRange({ from: '01.03.2026', to: '2026-03-31' }, 'de-DE', labels)).to.deep.equal({ from: '2026-03-01', to: '2026-03-31', problems: {} });
    const bad = readDayRange({ from: '31.02.2026', to: ['bogus', 'x'] }, 'de-DE', labels);
    expect(bad.from).to.equal('');
    expect(bad.to).to.equal('');
    expect(bad.problems.from).to.equal('From must be a date such as 31.01.2026 (or 2026-01-31).');
    expect(bad.problems.to).to.match(/^To must be a date such as 31\.01\.2026/);
    const backwards = readDayRange({ from: '03/31/2026', to: '03/01/2026' }, 'en-US', labels);
    expect(backwards).to.deep.include({ from: '2026-03-31', to: '' });
    expect(Object.keys(backwards.problems)).to.deep.equal(['to']);
    expect(readDayRange({}, 'en-GB', labels)).to.deep.equal({ from: '', to: '', problems: {} });
    // A locale that already writes ISO does not repeat itself.
    expect(readDayRange({ from: 'x' }, 'sv-SE', labels).problems.from).to.equal('From must be a date such as 2026-01-31.');
  });
});
