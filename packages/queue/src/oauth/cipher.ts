/**
 * OAuth tokens at rest: AES-256-GCM (node:crypto), never plain text in Redis. `GHL_TOKEN_KEY` is
 * a 32-byte key in base64; to rotate, give several, comma-separated: the first encrypts, every one
 * decrypts, and each sealed value names the key that sealed it (a key id: the first 8 hex digits
 * of the key's SHA-256, which says nothing about the key). Each value is bound to where it is kept
 * (its context, as GCM's additional data), so a value copied to another location's record does not
 * open there. Sealed form: `v1.<keyId>.<iv>.<tag>.<ciphertext>`, base64url parts.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { IngestError } from '../errors.ts';

const VERSION = 'v1';
/** GCM's recommended nonce length. */
const IV_BYTES = 12;
/** The full GCM tag: without pinning it, node accepts a tag as short as 4 bytes (a forgery in 2^32 tries). */
const TAG_BYTES = 16;

interface Key {
  id: string;
  bytes: Buffer;
}

/** A sealed value could not be opened: a wrong or missing key, another record's value, or tampering. */
export class SealedValueError extends Error {}

export class TokenCipher {
  readonly #keys: Key[];

  private constructor(keys: Key[]) {
    this.#keys = keys;
  }

  /** From the GHL_TOKEN_KEY setting; throws IngestError('CONFIG') saying what is wrong (never the key). */
  static fromSetting(setting: string): TokenCipher {
    const parts = setting
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
    if (parts.length === 0) throw new IngestError('CONFIG', 'GHL_TOKEN_KEY is empty: give a 32-byte key in base64 (openssl rand -base64 32)');
    const keys = parts.map((part, i) => {
      const bytes = Buffer.from(part, 'base64');
      if (bytes.length !== 32 || bytes.toString('base64').replace(/=+$/, '') !== part.replace(/=+$/, '')) {
        throw new IngestError(
          'CONFIG',
          `GHL_TOKEN_KEY${parts.length > 1 ? ` (key ${i + 1} of ${parts.length})` : ''} is not 32 bytes in base64 (it decodes to ${bytes.length}); make one with: openssl rand -base64 32`,
        );
      }
      return { id: createHash('sha256').update(bytes).digest('hex').slice(0, 8), bytes };
    });
    return new TokenCipher(keys);
  }

  /** The id of the key that seals new values. */
  get keyId(): string {
    return (this.#keys[0] as Key).id;
  }

  seal(plain: string, context: string): string {
    const key = this.#keys[0] as Key;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key.bytes, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [VERSION, key.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), body.toString('base64url')].join('.');
  }

  /** Throws SealedValueError (naming the key id, never a secret) when the value does not open here. */
  open(sealed: string, context: string): string {
    const [version, keyId, iv, tag, body, ...rest] = sealed.split('.');
    if (version !== VERSION || keyId === undefined || iv === undefined || tag === undefined || body === undefined || rest.length > 0) {
      throw new SealedValueError('not a sealed token (expected v1.<keyId>.<iv>.<tag>.<ciphertext>)');
    }
    const key = this.#keys.find((k) => k.id === keyId);
    if (key === undefined)
      throw new SealedValueError(`sealed with key ${keyId}, which GHL_TOKEN_KEY does not hold (keys: ${this.#keys.map((k) => k.id).join(', ')})`);
    const ivBytes = Buffer.from(iv, 'base64url');
    const tagBytes = Buffer.from(tag, 'base64url');
    if (ivBytes.length !== IV_BYTES) throw new SealedValueError(`its IV is ${ivBytes.length} bytes; a sealed token's is ${IV_BYTES}`);
    if (tagBytes.length !== TAG_BYTES) throw new SealedValueError(`its tag is ${tagBytes.length} bytes; a sealed token's is ${TAG_BYTES}`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.bytes, ivBytes, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(tagBytes);
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new SealedValueError(`does not open with key ${keyId}: altered, or sealed for another record`);
    }
  }

  /** Whether a sealed value was sealed with an older key (rotate: open and seal again). */
  isStale(sealed: string): boolean {
    return sealed.split('.')[1] !== this.keyId;
  }
}
