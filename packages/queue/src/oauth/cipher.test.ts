import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SealedValueError, TokenCipher } from './cipher.ts';

const cipher = TokenCipher.fromSetting(randomBytes(32).toString('base64'));

/** The sealed value with one of its dot-separated parts replaced. */
function withPart(sealed: string, index: number, part: string): string {
  const parts = sealed.split('.');
  parts[index] = part;
  return parts.join('.');
}

describe('TokenCipher', () => {
  it('opens what it sealed, only in the same context', () => {
    const sealed = cipher.seal('secret-token', 'loc1:refresh');
    expect(cipher.open(sealed, 'loc1:refresh')).toBe('secret-token');
    expect(() => cipher.open(sealed, 'loc2:refresh')).toThrow(SealedValueError);
  });

  it('refuses a tag cut to 4 bytes, before GCM sees it', () => {
    const sealed = cipher.seal('secret-token', 'ctx');
    const tag = Buffer.from(sealed.split('.')[3] as string, 'base64url');
    const short = withPart(sealed, 3, tag.subarray(0, 4).toString('base64url'));
    expect(() => cipher.open(short, 'ctx')).toThrow(/its tag is 4 bytes; a sealed token's is 16/);
  });

  it('refuses an IV that is not 12 bytes', () => {
    const sealed = cipher.seal('secret-token', 'ctx');
    expect(() => cipher.open(withPart(sealed, 2, randomBytes(16).toString('base64url')), 'ctx')).toThrow(/its IV is 16 bytes; a sealed token's is 12/);
  });

  it('seals with a 12-byte IV and a 16-byte tag', () => {
    const [, , iv, tag] = cipher.seal('x', 'ctx').split('.');
    expect(Buffer.from(iv as string, 'base64url').length).toBe(12);
    expect(Buffer.from(tag as string, 'base64url').length).toBe(16);
  });
});
