/**
 * Disk full under the embedded SQLite database: Paylink's data folder on a small tmpfs, filled up by
 * another file. Writes answer a clear 503 (`storage_full`), never a 500, the process stays up, pay
 * pages still show, the file stays intact (PRAGMA integrity_check) with exactly the writes that were
 * answered as done, and Paylink works again as soon as the space returns.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import knexFactory from 'knex';
import supertest from 'supertest';
import { merchantOn, startPaylink, statusCounts, tempDir, type Drill } from './support.ts';

const SIZE = '8m';

export const diskFullDrill: Drill = {
  name: 'disk full (SQLite on tmpfs)',
  async run(ctx) {
    const mnt = tempDir('disk');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE}`, 'tmpfs', mnt], { stdio: 'pipe' });
    } catch (err) {
      fs.rmSync(mnt, { recursive: true, force: true });
      // The suite's storage-full test covers the same answers with PRAGMA max_page_count.
      throw new Error(`cannot mount a tmpfs (${String((err as { stderr?: Buffer }).stderr ?? err).trim()}): this drill needs root; test/storage-full.test.ts checks the answers with SQLite's max_page_count instead`);
    }
    ctx.defer(() => {
      execFileSync('umount', [mnt]);
      fs.rmSync(mnt, { recursive: true, force: true });
    });
    const file = path.join(mnt, 'paylink.db');
    const server = await startPaylink({ DATABASE_URL: file, PAYLINK_DATA_DIR: path.join(mnt, 'data'), TRUST_PROXY: 'loopback' }, ctx);
    const shop = await merchantOn(server.url, 'disk-drill');
    const http = supertest(server.url);
    let customer = 0;
    const checkout = () => http.post(`/${shop.handle}/disk-drill`).set('X-Forwarded-For', `10.1.0.${++customer}`).type('form').send({ name: 'Ann Example', email: 'ann@example.test' }).ok(() => true);
    const bigLink = (n: number) =>
      http.post('/api/v1/links').set('Authorization', `Bearer ${shop.apiKey}`).send({ type: 'amount', amount: 900, name: `Big ${n}`, description: 'd'.repeat(2_000), internal_notes: 'n'.repeat(5_000) }).ok(() => true);
    const writes = async (n: number) => {
      const out: { kind: string; status: number; code?: string }[] = [];
      for (let i = 0; i < n; i++) {
        const c = await checkout();
        out.push({ kind: 'checkout', status: c.status, code: /storage is full/.test(c.text) ? 'storage_full' : undefined });
        const l = await bigLink(i);
        out.push({ kind: 'api', status: l.status, code: l.body?.code });
      }
      return out;
    };

    // Fill the disk: a file grows in 64 KB steps until the file system says ENOSPC.
    const filler = path.join(mnt, 'filler');
    const fd = fs.openSync(filler, 'w');
    const chunk = Buffer.alloc(64 * 1024, 1);
    try {
      for (;;) fs.writeSync(fd, chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    } finally {
      fs.closeSync(fd);
    }
    ctx.log(`tmpfs of ${SIZE} full (${(fs.statSync(filler).size / 1024).toFixed(0)} KB of filler); 20 checkouts and 20 large API writes`);
    const full = await writes(20);
    const page = await http.get(`/${shop.handle}/disk-drill`).ok(() => true);
    const alive = server.proc.exitCode === null && server.proc.signalCode === null;
    fs.rmSync(filler);
    ctx.log('space back: 10 more of each');
    const after = await writes(10);
    const done = [...full, ...after].filter((w) => w.kind === 'checkout' && w.status === 303).length;
    await server.stop('SIGTERM');

    const db = knexFactory({ client: 'better-sqlite3', connection: { filename: file }, useNullAsDefault: true });
    const integrity = ((await db.raw('PRAGMA integrity_check')) as { integrity_check: string }[]).map((r) => r.integrity_check).join('; ');
    const payments = Number(((await db('payments').count({ n: '*' }).first()) as { n: number }).n);
    await db.destroy();
    const failed = full.filter((w) => w.status >= 500);
    const clear = failed.every((w) => w.status === 503 && w.code === 'storage_full');
    return [
      {
        drill: this.name,
        check: 'writes on a full disk fail with a clear 503 (storage_full), never 500; the process stays up; pay pages show',
        figure: `checkout ${statusCounts(full.filter((w) => w.kind === 'checkout').map((w) => w.status))}; API ${statusCounts(full.filter((w) => w.kind === 'api').map((w) => w.status))}; ${failed.length} refused, all storage_full: ${clear}; pay page ${page.status}; process ${alive ? 'up' : 'gone'}`,
        pass: failed.length > 0 && clear && page.status === 200 && alive,
      },
      {
        drill: this.name,
        check: 'no corruption, and only what was answered as done was written',
        figure: `integrity_check ${String(integrity)}; ${payments} payments in the file for ${done} checkouts answered 303`,
        pass: integrity === 'ok' && payments === done,
      },
      {
        drill: this.name,
        check: 'works again when space returns',
        figure: `checkout ${statusCounts(after.filter((w) => w.kind === 'checkout').map((w) => w.status))}; API ${statusCounts(after.filter((w) => w.kind === 'api').map((w) => w.status))}`,
        pass: after.every((w) => w.status === 303 || w.status === 201),
      },
    ];
  },
};
