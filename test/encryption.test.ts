// Secrets at rest: AES-256-GCM, a fresh IV per value, bound to its context; altered, moved or
// foreign-keyed values do not open.
import { expect } from 'chai';
import { createSealer, DecryptionError } from '../src/core/encryption.ts';
import { secretsFrom } from '../src/core/secrets.ts';

describe('sealed secrets', () => {
  const sealer = createSealer(secretsFrom('install-secret-one-that-is-long-enough').derive('provider-secrets'));

  it('opens what it sealed, in its context only, and never repeats a ciphertext', () => {
    const a = sealer.seal('sk_live_123', 'merchant_providers:1:stripe');
    const b = sealer.seal('sk_live_123', 'merchant_providers:1:stripe');
    expect(a).to.match(/^v1\.[\w-]{16}\.[\w-]+$/);
    expect(a).not.to.equal(b);
    expect(a).not.to.include('sk_live');
    expect(sealer.open(a, 'merchant_providers:1:stripe')).to.equal('sk_live_123');
    expect(() => sealer.open(a, 'merchant_providers:2:stripe')).to.throw(DecryptionError);
  });

  it('refuses an altered value, another install’s key, and anything that is not a sealed value', () => {
    const sealed = sealer.seal('whsec_abc', 'ctx');
    const [v, iv, body] = sealed.split('.');
    const flipped = body.slice(0, -2) + (body.at(-2) === 'A' ? 'B' : 'A') + body.at(-1);
    expect(() => sealer.open(`${v}.${iv}.${flipped}`, 'ctx')).to.throw(DecryptionError);
    const other = createSealer(secretsFrom('another-install-secret-that-is-long-enough').derive('provider-secrets'));
    expect(() => other.open(sealed, 'ctx')).to.throw(DecryptionError);
    for (const junk of ['', 'v1', 'v2.a.b', 'v1.a.b.c', 'v1.AAAA.AAAA']) expect(() => sealer.open(junk, 'ctx'), junk).to.throw(DecryptionError);
    expect(() => createSealer(Buffer.alloc(16))).to.throw(RangeError);
  });
});
