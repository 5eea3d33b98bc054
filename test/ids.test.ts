import { expect } from 'chai';
import { publicId, sortableId } from '../src/core/ids.ts';

describe('public ids', () => {
  it('gives ids of high-volume rows the usual shape, sorting in the order they were made', async () => {
    const first = Array.from({ length: 200 }, () => sortableId('evt'));
    // A later millisecond: every id made after it sorts after every id made before (byte order, as the databases compare them).
    await new Promise((r) => setTimeout(r, 3));
    const later = Array.from({ length: 200 }, () => sortableId('evt'));
    for (const id of [...first, ...later]) expect(id).to.match(/^evt_[0-9A-Za-z]{22}$/);
    const lastOfFirst = [...first].sort()[first.length - 1];
    const firstOfLater = [...later].sort()[0];
    expect(Buffer.compare(Buffer.from(lastOfFirst), Buffer.from(firstOfLater))).to.equal(-1);
    expect(new Set([...first, ...later]).size).to.equal(400);
  });

  it('keeps ordinary public ids random: they do not share a time prefix', () => {
    const ids = Array.from({ length: 50 }, () => publicId('lnk'));
    expect(new Set(ids.map((id) => id.slice(4, 10))).size).to.be.greaterThan(40);
  });
});
