/**
 * Public ids for rows too numerous to give a stored random id (a million link views): the integer
 * key encrypted with a secret-derived key (one AES block), so the id reveals nothing, cannot be
 * guessed or enumerated, and maps back to its row without an extra index. `vw_…`, 22 characters.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';

export interface IdSealer {
  seal(key: number): string;
  /** The integer key, or null for anything that is not one of our ids. */
  open(id: string): number | null;
}

export function idSealer(secret: Buffer, prefix: string): IdSealer {
  const aesKey = secret.subarray(0, 16);
  const head = `${prefix}_`;
  return {
    seal(key) {
      const block = Buffer.alloc(16);
      block.writeBigUInt64BE(BigInt(key), 0);
      const c = createCipheriv('aes-128-ecb', aesKey, null).setAutoPadding(false);
      return head + Buffer.concat([c.update(block), c.final()]).toString('base64url');
    },
    open(id) {
      if (typeof id !== 'string' || !id.startsWith(head) || id.length !== head.length + 22) return null;
      const text = id.slice(head.length);
      const raw = Buffer.from(text, 'base64url');
      // Decoding skips stray characters and the last character's 4 spare bits: only the one
      // canonical spelling of a block opens, so no view has several ids.
      if (raw.length !== 16 || raw.toString('base64url') !== text) return null;
      const d = createDecipheriv('aes-128-ecb', aesKey, null).setAutoPadding(false);
      const block = Buffer.concat([d.update(raw), d.final()]);
      // The second half is all zeros in every id we issue: anything else was made up.
      if (block.readBigUInt64BE(8) !== 0n) return null;
      const key = block.readBigUInt64BE(0);
      return key > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(key);
    },
  };
}
