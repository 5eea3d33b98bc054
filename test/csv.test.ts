// CSV exports: RFC 4180 quoting with formula neutralisation (OWASP CSV injection), and streaming —
// a link's views arrive complete and in order, and an export stops reading when the client leaves.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import express, { type Response } from 'express';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { signUp, useEnv } from './support/harness.ts';
import { csvCell, csvRow, streamCsv } from '../src/core/csv.ts';

describe('CSV cells', () => {
  // [cell as stored, cell as written]
  const table: [string, string][] = [
    ['=1+1', "'=1+1"],
    ['+SUM(A1)', "'+SUM(A1)"],
    ['-2+3', "'-2+3"],
    ['@cmd', "'@cmd"],
    ['\t=x', "'\t=x"],
    ['\r=x', `"'\r=x"`],
    ['=HYPERLINK("http://evil")', `"'=HYPERLINK(""http://evil"")"`],
    ['-', "'-"],
    ['Ann Example', 'Ann Example'],
    ['Smith, "Jo"\nline two', '"Smith, ""Jo""\nline two"'],
    ['a=1', 'a=1'],
    [' =1', ' =1'],
    ['Zoë 東京 🙂', 'Zoë 東京 🙂'],
    ['', ''],
  ];
  for (const [stored, written] of table) {
    it(`writes ${JSON.stringify(stored)} as ${JSON.stringify(written)}`, () => {
      expect(csvCell(stored)).to.equal(written);
    });
  }

  it('writes numbers we computed as they are, and missing values as empty cells', () => {
    expect([csvCell(-5), csvCell(12.5), csvCell(null), csvCell(undefined)]).to.deep.equal(['-5', '12.5', '', '']);
  });

  it('ends each record with CRLF', () => {
    expect(csvRow(['a', 'b,c', null, 3])).to.equal('a,"b,c",,3\r\n');
  });
});

describe('CSV streaming', () => {
  const rowsOf = (n: number) => Array.from({ length: 1_000 }, (_, i) => `row ${n}-${i} ${'x'.repeat(60)}`);
  const turns = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
  };

  it('reads no further while the client is not keeping up, and goes on when the socket drains', async () => {
    let produced = 0;
    async function* forever() {
      for (;;) yield rowsOf(++produced);
    }
    // A socket that takes each write only when told to: a client that stopped reading.
    const pending: (() => void)[] = [];
    let wrote!: () => void;
    let firstWrite = new Promise<void>((resolve) => (wrote = resolve));
    const sink = new Writable({
      highWaterMark: 16 * 1024,
      write(_chunk, _encoding, callback) {
        pending.push(callback);
        wrote();
      },
    });
    const res = Object.assign(sink, { status: () => res, setHeader: () => res }) as unknown as Response;
    const done = streamCsv(res, { filename: 'slow.csv', header: ['text'], source: forever(), row: (t: string) => [t] });

    await firstWrite;
    await turns(20);
    const stalled = produced;
    expect(stalled, 'one 64 KB buffer is about one chunk').to.be.at.most(2);
    expect(pending).to.have.length(1);
    firstWrite = new Promise<void>((resolve) => (wrote = resolve));
    pending.shift()!();
    await firstWrite;
    await turns(20);
    expect(produced, 'a drain lets one more buffer through').to.be.within(stalled + 1, stalled + 2);
    sink.destroy();
    expect(await done, 'a client that left is not a finished export').to.equal(false);
  });

  it('sends nothing before the first rows, so a source that fails at once gets the ordinary error answer', async () => {
    async function* broken(): AsyncGenerator<string[]> {
      throw new Error('database unreachable');
    }
    const app = express();
    app.get('/export.csv', async (_req, res) => {
      await streamCsv(res, { filename: 'broken.csv', header: ['text'], source: broken(), row: (t: string) => [t] });
    });
    app.use((_err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(503).type('text').send('try again');
    });
    const res = await supertest(app).get('/export.csv').expect(503);
    expect(res.headers['content-type']).to.match(/^text\/plain/);
    expect(res.headers['content-disposition']).to.equal(undefined);
  });

  it('stops reading its source when the client disconnects', async () => {
    let chunks = 0;
    let closed!: () => void;
    const sourceClosed = new Promise<void>((resolve) => (closed = resolve));
    const finished: boolean[] = [];
    // A source that never ends: only the client leaving can stop it.
    async function* forever() {
      try {
        for (;;) {
          chunks++;
          yield rowsOf(chunks);
        }
      } finally {
        closed();
      }
    }
    const app = express();
    app.get('/export.csv', async (_req, res) => {
      finished.push(await streamCsv(res, { filename: 'endless.csv', header: ['text'], source: forever(), row: (t: string) => [t] }));
    });
    const server = http.createServer(app).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ port, host: '127.0.0.1', path: '/export.csv' }, (res) => {
          expect(res.headers['content-type']).to.equal('text/csv; charset=utf-8');
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      });
      await sourceClosed;
      const atClose = chunks;
      await turns(1);
      expect(finished).to.deep.equal([false]);
      expect(chunks, 'no chunk is read after the source is closed').to.equal(atClose);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

forEachTarget('CSV export of a link’s views', (target) => {
  const env = useEnv(target);

  it('streams 12,000 views complete, newest first, with masked IPs and neutralised referers', async function () {
    this.timeout(60_000);
    const acct = await signUp(env.app);
    const merchant = (await env.rt.services.merchants.getByHandle(acct.handle))!;
    const link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Busy link', path: 'busy', amount: 500 });
    const N = 12_000;
    const start = Date.parse('2026-01-01T00:00:00Z');
    // Bulk rows straight into the table (a real page view per row would take minutes), the link's
    // counter kept equal. Two views share each second, so the export's tie-break on id is exercised.
    // Each referer names its row, so the order can be read off it: later rows are newer, and of two
    // in the same second the later-inserted (higher id) comes first — row N-1 first, row 0 last.
    const rows = Array.from({ length: N }, (_, i) => ({
      link_id: link.key,
      viewed_at: new Date(start + Math.floor(i / 2) * 1000),
      ip: `192.168.${i % 250}.xxx`,
      browser: i % 3 ? 'Chrome' : 'Safari',
      os: i % 3 ? 'macOS' : 'iOS',
      device: i % 3 ? 'desktop' : 'mobile',
      referer: i === 7 ? '=cmd|"/c calc"!A1' : `https://news.example/${i}`,
    }));
    await env.rt.db.batchInsert('link_views', rows, 400); // SQLite allows 500 terms in one compound SELECT
    await env.rt.db('links').where({ id: link.key }).update({ views_count: N });

    const other = await signUp(env.app);
    await other.agent.get(`/app/links/${link.id}/views.csv`).expect(404);
    await acct.agent.get('/app/links/lnk_nope/views.csv').expect(404);

    const res = await acct.agent.get(`/app/links/${link.id}/views.csv`).buffer(true).expect(200);
    expect(res.headers['content-type']).to.equal('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).to.equal('attachment; filename="views-busy-2026-03-02.csv"');
    expect(res.headers['cache-control']).to.equal('no-store');
    expect(res.text.startsWith('\uFEFFid,viewed_at,ip,browser,os,device,referer\r\n')).to.equal(true);
    const lines = res.text.slice(1).split('\r\n');
    expect(lines.pop(), 'the file ends with CRLF').to.equal('');
    expect(lines).to.have.length(N + 1);

    const ids = new Set<string>();
    lines.slice(1).forEach((line, n) => {
      const i = N - 1 - n;
      const r = rows[i];
      const [id, ...rest] = line.split(',');
      ids.add(id);
      const referer = i === 7 ? `"'=cmd|""/c calc""!A1"` : r.referer;
      expect(rest.join(','), `record ${n}`).to.equal([r.viewed_at.toISOString(), r.ip, r.browser, r.os, r.device, referer].join(','));
    });
    expect(ids.size, 'every view has its own id').to.equal(N);
    expect([...ids].every((id) => /^vw_[\w-]{22}$/.test(id))).to.equal(true);
  });
});
