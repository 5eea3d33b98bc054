// API keys: random, shown once, stored as SHA-256 (they carry 130+ bits, so a slow hash adds nothing), revocable.
import { z } from 'zod';
import type { Db } from '../../core/db.ts';
import { inTransaction, toDate, toDateOrNull, rowsByKeys } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import type { EventBus } from '../../core/events.ts';
import { publicId, randomToken, sha256Hex } from '../../core/ids.ts';
import { NotFoundError, ValidationError } from '../../core/errors.ts';
import { parseBody } from '../../core/http.ts';
import { KEY_ROLES, type KeyRole } from '../../core/access.ts';
import { parseCap, parseRole } from '../merchants/index.ts';

export interface ApiKey {
  id: string;
  name: string;
  /** The first characters, to recognise a key in lists and logs. */
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  /** What the key may do (core/access.ts); keys made before roles existed are `admin` (full access). */
  role: KeyRole;
  /** An agent key's cap on one link or request, minor units of the merchant's currency. */
  amountCap: number | null;
}

const KEY_PREFIX = 'pl_live_';

export const apiKeyNameSchema = z.object({
  name: z
    .string()
    .trim()
    .max(80, 'Keep the name under 80 characters.')
    .refine((s) => !/[\r\n]/.test(s), 'The name cannot contain line breaks.')
    .optional()
    .transform((s) => s || 'API key'),
});

const fromRow = (r: any): ApiKey => ({
  id: r.public_id,
  name: r.name,
  prefix: r.prefix,
  createdAt: toDate(r.created_at),
  lastUsedAt: toDateOrNull(r.last_used_at),
  revokedAt: toDateOrNull(r.revoked_at),
  role: (r.role ?? 'admin') as KeyRole,
  amountCap: r.amount_cap === null || r.amount_cap === undefined ? null : Number(r.amount_cap),
});

export function apiKeyJson(k: ApiKey) {
  return {
    id: k.id,
    object: 'api_key',
    name: k.name,
    prefix: k.prefix,
    created_at: k.createdAt.toISOString(),
    last_used_at: k.lastUsedAt?.toISOString() ?? null,
    revoked_at: k.revokedAt?.toISOString() ?? null,
    role: k.role,
    amount_cap: k.amountCap,
  };
}

export function createApiKeyService({ db, clock, events }: { db: Db; clock: Clock; events: EventBus }) {
  // last_used_at is written at most once a minute per key, so authenticating stays one read.
  const lastTouched = new Map<number, number>();

  return {
    /** Creates a key; the secret is returned here once and never again. */
    async create(merchant: { key: number; id: string; currency: string }, raw: unknown): Promise<{ apiKey: ApiKey; secret: string }> {
      const body = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
      const errors = [];
      let name = 'API key';
      let role: KeyRole = 'admin';
      let cap: number | null = null;
      for (const read of [
        () => void (name = parseBody(apiKeyNameSchema, { name: body.name }).name),
        // No role given (the CLI, older callers): full access, as every key had before roles.
        () => void (role = body.role === undefined || body.role === '' ? 'admin' : (parseRole(body.role, KEY_ROLES) as KeyRole)),
        () => void (cap = parseCap(body.amount_cap, merchant.currency)),
      ]) {
        try {
          read();
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err;
          errors.push(...err.errors);
        }
      }
      if (errors.length) throw new ValidationError(errors);
      const secret = KEY_PREFIX + randomToken(40);
      const now = clock.now();
      const id = publicId('key');
      await inTransaction(db, async (trx) => {
        await trx('api_keys').insert({
          public_id: id,
          merchant_id: merchant.key,
          name,
          prefix: secret.slice(0, KEY_PREFIX.length + 6),
          secret_hash: sha256Hex(secret),
          role,
          amount_cap: role === 'agent' ? cap : null,
          created_at: now,
        });
        await events.emit(trx, 'api_key.created', { merchantId: merchant.id, apiKeyId: id, name }, merchant.key);
      });
      return { apiKey: fromRow(await db('api_keys').where({ public_id: id }).first()), secret };
    },

    async list(merchantKey: number): Promise<ApiKey[]> {
      return (await db('api_keys').where({ merchant_id: merchantKey }).orderBy('id', 'desc')).map(fromRow);
    },

    /** Revokes one of this merchant's keys; another merchant's key id is a 404. */
    async revoke(merchant: { key: number; id: string }, keyId: string): Promise<ApiKey> {
      const row = await db('api_keys').where({ public_id: keyId, merchant_id: merchant.key }).first();
      if (!row) throw new NotFoundError('No such API key.');
      if (!row.revoked_at) {
        await inTransaction(db, async (trx) => {
          await trx('api_keys').where({ id: row.id }).update({ revoked_at: clock.now() });
          await events.emit(trx, 'api_key.revoked', { merchantId: merchant.id, apiKeyId: keyId }, merchant.key);
        });
      }
      return fromRow(await db('api_keys').where({ id: row.id }).first());
    },

    /** Keys' public ids and names by internal key (revoked ones too): who created what. */
    async refsByKeys(keys: number[]): Promise<Map<number, { id: string; name: string }>> {
      return rowsByKeys(db, 'api_keys', keys, ['public_id', 'name'], (r) => ({ id: String(r.public_id), name: String(r.name) }));
    },

    /** The merchant key, role and cap of a valid, unrevoked secret, or null. */

    async authenticate(secret: string): Promise<{ merchantKey: number; apiKeyId: string; apiKeyKey: number; role: KeyRole; amountCap: number | null } | null> {
      if (!secret.startsWith(KEY_PREFIX) || secret.length > 200) return null;
      const row = await db('api_keys').where({ secret_hash: sha256Hex(secret) }).whereNull('revoked_at').first('id', 'merchant_id', 'public_id', 'role', 'amount_cap');
      if (!row) return null;
      const now = clock.now().getTime();
      if ((lastTouched.get(row.id) ?? 0) < now - 60_000) {
        lastTouched.set(row.id, now);
        await db('api_keys').where({ id: row.id }).update({ last_used_at: new Date(now) });
      }
      return { merchantKey: row.merchant_id, apiKeyId: row.public_id, apiKeyKey: Number(row.id), role: (row.role ?? 'admin') as KeyRole, amountCap: row.amount_cap === null || row.amount_cap === undefined ? null : Number(row.amount_cap) };
    },
  };
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>;
