import { expect } from 'chai';
import type { ProviderError } from '../../src/plugin-api.ts';

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
