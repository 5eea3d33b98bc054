import { expect } from 'chai';
import type { ProviderError } from '../../src/plugin-api.ts';
import type { Db } from '../../src/core/db.ts';

/**
 * The ProviderError a channel's send threw. Checked by name and shape, not instanceof: mocha loads
 * test files through require() while the plugin host loads plugins with import(), so each side has
 * its own copy of plugin-api.ts.
 */
export async function providerFailure(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.include({ name: 'ProviderError' });
    expect((err as ProviderError).retryable).to.be.a('boolean');
    return err as ProviderError;
  }
  throw new Error('expected the send to fail');
}

/** A message channel-outbox kept (what a fresh install "sends"). */
export interface OutboxRecord {
  channel: string;
  to: string;
  subject: string | null;
  text: string;
  /** Only in records kept before the Outbox stopped keeping an email's HTML version. */
  html?: string | null;
  messageId: string;
}

/** Every message channel-outbox kept, oldest first. */
export async function outboxMessages(env: { rt: { db: Db } }): Promise<OutboxRecord[]> {
  const rows = (await env.rt.db('plugin_records').where({ plugin_id: 'channel-outbox' }).orderBy('id')) as { data: string }[];
  return rows.map((r) => JSON.parse(r.data) as OutboxRecord);
}
