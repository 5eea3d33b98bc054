/**
 * Payment requests from a CSV file (issue 13, item 6): every row is checked first, with the rules of
 * the API create (checkRequest), plus references repeated in the file or already taken — all or
 * nothing, each problem listed by spreadsheet row and column, as the customer import does. A file
 * that passes becomes an import (a `request_imports` row holding the checked rows); a background job
 * writes them in batches, each batch one transaction that writes its requests, queues their messages
 * and moves the import's count on — so a process that dies mid-way leaves whole batches behind, and
 * the job, run again, goes on from the count. The dashboard polls the import's progress: requests
 * created, then messages sent.
 */
import type { Knex } from 'knex';
import type { Db, Trx } from '../../core/db.ts';
import { inTransaction, toDate, toDateOrNull } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { JobQueue } from '../../core/jobs.ts';
import type { Logger } from '../../core/log.ts';
import { NotFoundError, type FieldError } from '../../core/errors.ts';
import { publicId } from '../../core/ids.ts';
import { parseDecimalAmount } from '../../core/money.ts';
import { pace } from '../../core/pace.ts';
import { byRow, fileProblem, readCsvImport, rowProblemsFrom, type ImportProblem } from '../../core/csv-import.ts';
import { currencySchema, type Merchant, type MerchantService } from '../merchants/index.ts';
import type { DeliveryCounts, DeliveryService, QueueItem } from '../deliveries/index.ts';
import type { RequestService, ValidRequest } from './service.ts';

export const REQUEST_IMPORT_MAX_ROWS = 10_000;
export const REQUEST_IMPORT_MAX_BYTES = 4 * 1024 * 1024;
/** Every column an import file may have, in the order the template writes them. */
export const REQUEST_IMPORT_COLUMNS = [
  'reference',
  'amount',
  'currency',
  'description',
  'customer_name',
  'customer_email',
  'customer_phone',
  'customer_country',
  'customer_id',
  'channels',
  'expires_in_days',
  'expires_at',
  'allow_refresh',
] as const;
/** Requests written per transaction. */
export const IMPORT_BATCH = 100;
/** One job run writes for at most this long, then queues the next run (a worker is never held long). */
const RUN_BUDGET_MS = 15_000;
const DAY_SECONDS = 86_400;

export type ImportState = 'creating' | 'done' | 'failed';

export interface RequestImport {
  key: number;
  id: string;
  merchantKey: number;
  state: ImportState;
  total: number;
  created: number;
  skipped: number;
  /** Rows not written because their reference was taken between the check and the write. */
  skippedProblems: ImportProblem[];
  messagesTotal: number;
  error: string | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export interface ImportProgress extends RequestImport {
  messages: DeliveryCounts;
  /** Nothing more will change without someone acting: every row handled, no message due or being sent. */
  settled: boolean;
}

export type ImportCheck = { ok: true; rows: { row: number; request: ValidRequest }[]; messages: number } | { ok: false; problems: ImportProblem[] };

/** The service's field (the API's) → the CSV column it came from. */
const COLUMN_OF: Record<string, string> = {
  customer: 'customer_name',
  'customer.name': 'customer_name',
  'customer.email': 'customer_email',
  'customer.phone': 'customer_phone',
  'customer.country': 'customer_country',
  expires_in: 'expires_in_days',
};
const columnOf = (field: string): string => COLUMN_OF[field] ?? field.split('.')[0];

/** The API's wording where a column of the file is named otherwise. */
const CSV_MESSAGES: Record<string, string> = {
  'customer:required': 'Name the customer: customer_name with customer_email or customer_phone, or a customer_id.',
  'customer:conflicting_fields': 'Give customer_id or the customer_name, customer_email and customer_phone columns, not both.',
  'expires_at:conflicting_fields': 'Give expires_at or expires_in_days, not both.',
  'expires_in:too_small': 'expires_in_days must be at least 1.',
  'expires_in:too_big': 'expires_in_days must be at most a year (366 days).',
};

const TRUE = new Set(['yes', 'y', 'true', '1', 'on']);
const FALSE = new Set(['no', 'n', 'false', '0', 'off']);

/** One row of the file → the API's input, and the problems only the file's own formats can have. */
function inputOf(cell: (c: string) => string): { raw: Record<string, unknown>; own: FieldError[] } {
  const own: FieldError[] = [];
  const text = (c: string) => cell(c).trim();
  const orNull = (c: string) => text(c) || null;
  const currency = text('currency').toUpperCase();
  // The amount in major units, with the currency's decimals ("12.50" EUR, "1250" JPY).
  let amount: number | null = null;
  if (!text('amount')) own.push({ field: 'amount', code: 'required', message: 'Enter the amount to request, such as 12.50.' });
  else if (currencySchema.safeParse(currency).success) {
    const parsed = parseDecimalAmount(text('amount'), currency);
    if (parsed.ok) amount = parsed.minor;
    else own.push({ field: 'amount', code: parsed.code, message: parsed.message });
  }
  const days = text('expires_in_days');
  let expiresIn: number | null = null;
  if (days) {
    if (/^\d{1,4}$/.test(days)) expiresIn = Number(days) * DAY_SECONDS;
    else own.push({ field: 'expires_in', code: 'invalid_expiry', message: 'expires_in_days must be a whole number of days, such as 7.' });
  }
  const refresh = text('allow_refresh').toLowerCase();
  if (refresh && !TRUE.has(refresh) && !FALSE.has(refresh)) own.push({ field: 'allow_refresh', code: 'invalid_boolean', message: 'allow_refresh must be yes or no (or true/false, 1/0), or empty for your default (Settings → Payment requests).' });
  const channels = text('channels').toLowerCase().split(/[\s,;|]+/).filter(Boolean);
  const contact = ['customer_name', 'customer_email', 'customer_phone', 'customer_country'].some((c) => text(c));
  const raw: Record<string, unknown> = {
    // A placeholder keeps the API's "amount" message out when the file's own one is given; the row fails anyway.
    amount: amount ?? 1,
    currency,
    description: text('description') || null,
    reference: orNull('reference'),
    customer_id: orNull('customer_id'),
    customer: contact ? { name: cell('customer_name'), email: orNull('customer_email'), phone: orNull('customer_phone'), country: orNull('customer_country')?.toUpperCase() ?? null } : null,
    expires_at: orNull('expires_at'),
    expires_in: expiresIn,
    channels: channels.length ? channels : null,
    // Empty: the merchant's default.
    allow_refresh: refresh ? TRUE.has(refresh) : null,
  };
  return { raw, own };
}

interface ImportRow {
  id: number;
  public_id: string;
  merchant_id: number;
  api_key_id: number | null;
  state: ImportState;
  total: number;
  created_count: number;
  skipped_count: number;
  skipped: string | null;
  messages_total: number;
  pending: string | null;
  error: string | null;
  created_at: unknown;
  finished_at: unknown;
}

/** A checked row as an import keeps it until written. */
type Stored = Omit<ValidRequest, 'expiresAt'> & { row: number; expiresAt: string };

const fromRow = (r: ImportRow): RequestImport => ({
  key: Number(r.id),
  id: r.public_id,
  merchantKey: Number(r.merchant_id),
  state: r.state,
  total: Number(r.total),
  created: Number(r.created_count),
  skipped: Number(r.skipped_count),
  skippedProblems: r.skipped ? (JSON.parse(r.skipped) as ImportProblem[]) : [],
  messagesTotal: Number(r.messages_total),
  error: r.error ?? null,
  createdAt: toDate(r.created_at),
  finishedAt: toDateOrNull(r.finished_at),
});

export interface RequestImportDeps {
  db: Db;
  clock: Clock;
  jobs: Pick<JobQueue, 'define' | 'enqueue'>;
  log: Logger;
  requests: Pick<RequestService, 'check' | 'referencesTaken' | 'write'>;
  deliveries: Pick<DeliveryService, 'queue' | 'initialCounts'>;
  merchants: Pick<MerchantService, 'getByKey'>;
}

export function createRequestImports(deps: RequestImportDeps) {
  const { db, clock, jobs, requests } = deps;
  const scoped = (q: Db | Trx, merchantKey: number) => q('request_imports').where({ merchant_id: merchantKey });

  const imports = {
    /**
     * Checks a whole file (no query per row: the customers it names by id and the references it
     * uses are read in a few queries for all). Answers every problem, or every row checked.
     */
    async check(merchantKey: number, text: string): Promise<ImportCheck> {
      const read = readCsvImport(text, {
        columns: REQUEST_IMPORT_COLUMNS,
        noun: 'payment requests',
        maxRows: REQUEST_IMPORT_MAX_ROWS,
        maxBytes: REQUEST_IMPORT_MAX_BYTES,
        checkHeader: (present, row) => {
          const missing = ['amount', 'currency'].filter((c) => !present.has(c));
          if (!present.has('customer_name') && !present.has('customer_id')) missing.push('customer_name');
          return missing.length
            ? [{ row, column: missing[0], code: 'missing_column', message: `The first row must be a header with at least the columns amount, currency and customer_name (or customer_id), such as: ${TEMPLATE_HEADER}` }]
            : [];
        },
      });
      if (!read.ok) return read;
      const problems: ImportProblem[] = [...read.rowProblems];
      const inputs = read.rows.map((r) => inputOf(r.cell));
      const checked = await requests.check(merchantKey, inputs.map((i) => i.raw));
      const valid: { row: number; request: ValidRequest }[] = [];
      const firstRowOf = new Map<string, number>();
      read.rows.forEach((r, i) => {
        const { own } = inputs[i];
        const c = checked[i];
        // The file's own message for a column first (an amount that is no number), then the rules'.
        const errors = [...own, ...(c.ok ? [] : c.errors)].map((e) => ({ ...e, message: CSV_MESSAGES[`${e.field}:${e.code}`] ?? e.message }));
        const reference = c.ok ? c.request.reference : (inputs[i].raw.reference as string | null);
        if (reference && !errors.some((e) => e.field === 'reference')) {
          const first = firstRowOf.get(reference);
          if (first !== undefined) errors.push({ field: 'reference', code: 'duplicate_reference', message: `The same reference as row ${first}. Each reference can be in the file once.` });
          else firstRowOf.set(reference, r.row);
        }
        if (errors.length) problems.push(...rowProblemsFrom(r.row, errors, columnOf));
        else if (c.ok) valid.push({ row: r.row, request: c.request });
      });
      // References the merchant's requests already have (the write checks again, batch by batch).
      const taken = await requests.referencesTaken(merchantKey, [...firstRowOf.keys()]);
      for (const [reference, row] of firstRowOf) {
        if (taken.has(reference)) problems.push({ row, column: 'reference', code: 'reference_taken', message: 'A payment request with this reference already exists.' });
      }
      if (problems.length) return { ok: false, problems: byRow(problems) };
      if (!valid.length) return fileProblem('no_rows', 'The file has a header but no payment requests below it.', read.headerRow);
      return { ok: true, rows: valid, messages: valid.reduce((n, v) => n + v.request.sends.length, 0) };
    },

    /**
     * Checks the file and, when every row passes, starts the import: the import row and its job, in
     * one transaction. The requests are written in the background (see the job below).
     */
    async start(merchant: Merchant, text: string, by: { apiKeyKey?: number | null } = {}): Promise<{ ok: true; import: RequestImport } | { ok: false; problems: ImportProblem[] }> {
      const checked = await imports.check(merchant.key, text);
      if (!checked.ok) return checked;
      const id = publicId('rqi');
      const now = clock.now();
      const pending: Stored[] = checked.rows.map(({ row, request }) => ({ ...request, row, expiresAt: request.expiresAt.toISOString() }));
      await inTransaction(db, async (trx) => {
        await trx('request_imports').insert({
          public_id: id,
          merchant_id: merchant.key,
          api_key_id: by.apiKeyKey ?? null,
          state: 'creating',
          total: pending.length,
          created_count: 0,
          skipped_count: 0,
          messages_total: checked.messages,
          pending: JSON.stringify(pending),
          created_at: now,
          updated_at: now,
        });
        await jobs.enqueue(trx, 'requests.import', { importId: id }, { uniqueKey: `requests.import:${id}:0` });
      });
      return { ok: true, import: await imports.get(merchant.key, id) };
    },

    async get(merchantKey: number, id: string): Promise<RequestImport> {
      const row = (await scoped(db, merchantKey).andWhere({ public_id: id }).first()) as ImportRow | undefined;
      if (!row) throw new NotFoundError('No import of yours has this id.');
      return fromRow(row);
    },

    /** The merchant's latest imports, newest first. */
    async recent(merchantKey: number, limit = 5): Promise<RequestImport[]> {
      const rows = (await scoped(db, merchantKey).orderBy('id', 'desc').limit(limit).select('id', 'public_id', 'merchant_id', 'api_key_id', 'state', 'total', 'created_count', 'skipped_count', 'skipped', 'messages_total', 'error', 'created_at', 'finished_at')) as ImportRow[];
      return rows.map(fromRow);
    },

    /** Where an import stands: rows written, and how the messages of the requests written so far went. */
    async progress(merchantKey: number, id: string): Promise<ImportProgress> {
      const imp = await imports.get(merchantKey, id);
      const linkKeys = db('payment_requests').where({ merchant_id: merchantKey, import_id: imp.key }).select('link_id') as unknown as Knex.QueryBuilder;
      const messages = await deps.deliveries.initialCounts(merchantKey, linkKeys);
      const settled = imp.state !== 'creating' && messages.due + messages.sending === 0;
      return { ...imp, messages, settled };
    },
  };

  /** Thrown inside a batch's transaction when another run moved the import on first (it rolls back). */
  class Overtaken extends Error {}

  /**
   * Writes the import's remaining rows, a batch per transaction, for up to RUN_BUDGET_MS; then queues
   * the next run. A batch first moves the count on conditionally (only from the value this run read),
   * so two runs of one import never write the same rows: the later one finds the count moved and stops.
   */
  async function run(id: string, attempt: { last: boolean }): Promise<void> {
    const row = (await db('request_imports').where({ public_id: id }).first()) as ImportRow | undefined;
    if (!row || row.state !== 'creating') return;
    const merchant = await deps.merchants.getByKey(Number(row.merchant_id));
    if (!merchant) return;
    const pending = JSON.parse(row.pending ?? '[]') as Stored[];
    let created = Number(row.created_count);
    let skipped = Number(row.skipped_count);
    const skippedProblems: ImportProblem[] = row.skipped ? JSON.parse(row.skipped) : [];
    const started = Date.now();
    try {
      while (created + skipped < pending.length) {
        const batch = pending.slice(created + skipped, created + skipped + IMPORT_BATCH);
        const outcome = await inTransaction(db, async (trx) => {
          const now = clock.now();
          const claimed = await trx('request_imports').where({ id: row.id, state: 'creating', created_count: created, skipped_count: skipped }).update({ updated_at: now });
          if (!claimed) throw new Overtaken();
          // A reference taken since the file was checked (an API create in between): that row is skipped and listed.
          const taken = await requests.referencesTaken(merchant.key, batch.flatMap((b) => (b.reference ? [b.reference] : [])), trx);
          const sends: QueueItem[] = [];
          const skippedNow: ImportProblem[] = [];
          let written = 0;
          for (const b of batch) {
            if (b.reference && taken.has(b.reference)) {
              skippedNow.push({ row: b.row, column: 'reference', code: 'reference_taken', message: 'Not created: a payment request with this reference was made after the file was checked.' });
              continue;
            }
            const { row: _row, expiresAt, ...rest } = b;
            const w = await requests.write(trx, merchant, { ...rest, expiresAt: new Date(expiresAt) }, { source: 'import', apiKeyKey: row.api_key_id === null ? null : Number(row.api_key_id), importKey: Number(row.id) });
            sends.push(...w.sends);
            written++;
          }
          await deps.deliveries.queue(trx, sends);
          const update: Record<string, unknown> = { created_count: created + written, skipped_count: skipped + skippedNow.length, updated_at: now };
          if (skippedNow.length) update.skipped = JSON.stringify([...skippedProblems, ...skippedNow]);
          await trx('request_imports').where({ id: row.id }).update(update);
          return { written, skippedNow };
        });
        created += outcome.written;
        skipped += outcome.skippedNow.length;
        skippedProblems.push(...outcome.skippedNow);
        if (created + skipped < pending.length && Date.now() - started > RUN_BUDGET_MS) {
          await jobs.enqueue(db, 'requests.import', { importId: id }, { uniqueKey: `requests.import:${id}:${created + skipped}` });
          return;
        }
        await pace();
      }
      const now = clock.now();
      await db('request_imports').where({ id: row.id, state: 'creating' }).update({ state: 'done', pending: null, finished_at: now, updated_at: now });
    } catch (err) {
      if (err instanceof Overtaken) return;
      // The last attempt failed: the import stops where it is (whole batches written), and says so.
      if (attempt.last) await stopped(id, err instanceof Error ? err.message : String(err));
      throw err;
    }
  }

  /** The import gave up: it stops where it is (whole batches written), and its page says so. */
  async function stopped(id: string, why: string): Promise<void> {
    const row = (await db('request_imports').where({ public_id: id }).first('id', 'created_count', 'total')) as { id: number; created_count: number; total: number } | undefined;
    if (!row) return;
    const now = clock.now();
    const message = `Stopped after ${Number(row.created_count).toLocaleString('en')} of ${Number(row.total).toLocaleString('en')} requests: ${why}`.slice(0, 500);
    await db('request_imports').where({ id: row.id, state: 'creating' }).update({ state: 'failed', error: message, finished_at: now, updated_at: now });
    deps.log.error('a payment request import failed', { import: id, error: why });
  }

  jobs.define<{ importId: string }>('requests.import', ({ importId }, job) => run(importId, { last: job.attempts >= job.maxAttempts }), {
    // Its worker stopped during the last attempt: no handler ran to say so.
    onDead: ({ importId }) => stopped(importId, 'the process writing it stopped (it crashed or was killed) and no attempts were left.'),
  });

  return imports;
}

export const TEMPLATE_HEADER = 'reference,amount,currency,description,customer_name,customer_email,customer_phone,channels,expires_in_days';

/** The template the upload page offers: the header and two example rows. */
export const IMPORT_TEMPLATE = `${TEMPLATE_HEADER}\r\nINV-1001,12.50,EUR,Invoice 1001,Jane Doe,jane@example.com,,email,14\r\nINV-1002,80.00,EUR,"Repair, March",John Smith,john@example.com,+31612345678,email sms,7\r\n`;

export type RequestImports = ReturnType<typeof createRequestImports>;
