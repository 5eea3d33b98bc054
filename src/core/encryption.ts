/**
 * Secrets at rest (e.g. a merchant's provider API keys): AES-256-GCM under a purpose-bound key from
 * `secrets.derive(...)`. Each value gets a fresh 96-bit IV; `context` is authenticated (not stored),
 * so a ciphertext copied to another row (another merchant, another provider) does not open there.
 *
 * Format: `v1.<iv>.<ciphertext+tag>` (base64url), so the scheme can change later without guessing.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class DecryptionError extends Error {
  readonly code = 'decryption_failed';
  constructor(message = 'a stored secret could not be decrypted (wrong install secret, or the value was altered)') {
    super(message);
    this.name = 'DecryptionError';
  }
}

export interface Sealer {
  seal(plaintext: string, context: string): string;
  /** Throws DecryptionError for a value that was altered, sealed under another key or another context. */
  open(sealed: string, context: string): string;
}

export function createSealer(key: Buffer): Sealer {
  if (key.length !== 32) throw new RangeError('AES-256-GCM needs a 32-byte key');
  return Object.freeze({
    seal(plaintext: string, context: string): string {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(context, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${VERSION}.${iv.toString('base64url')}.${body.toString('base64url')}`;
    },
    open(sealed: string, context: string): string {
      const [version, ivText, bodyText, extra] = sealed.split('.');
      if (version !== VERSION || !ivText || !bodyText || extra !== undefined) throw new DecryptionError('not a sealed value');
      const iv = Buffer.from(ivText, 'base64url');
      const body = Buffer.from(bodyText, 'base64url');
      if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new DecryptionError('not a sealed value');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv);
        decipher.setAAD(Buffer.from(context, 'utf8'));
        decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
        return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch {
        throw new DecryptionError();
      }
    },
  });
}
