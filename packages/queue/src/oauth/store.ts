/**
 * The OAuth token store every worker host shares: one Redis hash per location and per agency
 * (company), in the record's own slot, with the tokens sealed (cipher.ts) and never in plain text.
 * This module owns the records: the refresh lease and generation (single flight, see
 * commands/oauth-*.lua), what `ingest auth` imports, removes and shows, and what the intake's
 * install callback stores. A generation counts refresh tokens: each stored pair is a new one.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config.ts';
import type { RedisClient } from '../connection.ts';
import { keysFor, type Keys } from '../keys.ts';
import { defineScripts } from '../scripts.ts';
import { TokenCipher } from './cipher.ts';
import type { Grant } from './client.ts';

/** Whose record: a location's, or an agency's. */
export type OAuthOwner = { kind: 'location'; id: string } | { kind: 'company'; id: string };

/**
 * Where a location's tokens come from: its own refresh token (`location`), or its agency's
 * (`from-company`: location tokens asked for with the Company token). A company record is `company`.
 */
export type OAuthSource = 'location' | 'from-company' | 'company';

/** A record as status shows it: no secret. */
export interface OAuthRecordInfo {
  owner: OAuthOwner;
  source: OAuthSource;
  companyId: string | undefined;
  /** Epoch ms the access token expires; 0 without one. */
  expiresAt: number;
  refreshedAt: number | undefined;
  refreshes: number;
  failures: number;
  lastError: string | undefined;
  /** Why the record cannot be used until a new authorisation (invalid_grant, uninstalled...). */
  revoked: string | undefined;
  /** Epoch ms before which no refresh should be tried (HighLevel unavailable). */
  retryAt: number;
  gen: string;
  refreshing: boolean;
  hasRefreshToken: boolean;
  /** The key id that sealed its tokens (rotation: a record sealed with an older key). */
  keyId: string | undefined;
  /**
   * The scopes HighLevel last granted (recorded with each grant: an install, a refresh, a location
   * token from the agency); undefined until one named them (`auth import` brings none).
   */
  scopes: string[] | undefined;
}

/** A record with its tokens opened, for the process that uses them. */
export interface OAuthRecord extends OAuthRecordInfo {
  accessToken: string | undefined;
  refreshToken: string | undefined;
}

export type BeginResult =
  | { kind: 'gone' }
  | { kind: 'changed' }
  | { kind: 'busy'; waitMs: number }
  | { kind: 'mine'; lease: string; takenOver: boolean }
  | { kind: 'revoked'; reason: string };

export interface ImportedTokens {
  refreshToken: string;
  accessToken?: string | undefined;
  expiresAt?: number | undefined;
  /** What HighLevel granted, when known (an install's code exchange says; an imported line does not). */
  scopes?: readonly string[] | undefined;
}

/** The shared store opened with GHL_TOKEN_KEY (a bad key is an error); undefined when the setting is absent. */
export function openOAuthStore(redis: RedisClient, config: Config): OAuthStore | undefined {
  return config.oauth === undefined ? undefined : new OAuthStore(redis, config.queuePrefix, TokenCipher.fromSetting(config.oauth.tokenKey));
}

export class OAuthStore {
  readonly #redis: RedisClient;
  readonly #keys: Keys;
  readonly #prefix: string;
  readonly #cipher: TokenCipher;

  constructor(redis: RedisClient, prefix: string, cipher: TokenCipher) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#keys = keysFor(prefix);
    this.#cipher = cipher;
    defineScripts(redis);
  }

  /**
   * Stores a refresh token (and an access token, when known) from an authorisation: `ingest auth
   * import`, or the install callback. A new generation: processes holding the old pair read the
   * new one; a refresh in flight for the old pair can no longer store over it.
   */
  async put(owner: OAuthOwner, tokens: ImportedTokens, now = Date.now()): Promise<void> {
    const key = this.#key(owner);
    const fields: Record<string, string | number> = {
      source: owner.kind === 'company' ? 'company' : 'location',
      refresh: this.#cipher.seal(tokens.refreshToken, this.#context(owner, 'refresh')),
      importedAt: now,
      failures: 0,
    };
    if (tokens.accessToken !== undefined) {
      fields.access = this.#cipher.seal(tokens.accessToken, this.#context(owner, 'access'));
      fields.expiresAt = tokens.expiresAt ?? 0;
      fields.refreshedAt = now;
    }
    if (tokens.scopes !== undefined && tokens.scopes.length > 0) fields.scope = tokens.scopes.join(' ');
    await this.#redis
      .multi()
      // A new authorisation: what the old one was granted no longer says anything.
      .hdel(key, 'revoked', 'lastError', 'retryAt', 'lease', 'leaseUntil', 'companyId', 'access', 'expiresAt', 'scope')
      .hset(key, fields)
      .hincrby(key, 'gen', 1)
      .exec();
    await this.#redis.sadd(this.#index(owner), owner.id);
  }

  /** Makes a location take its tokens from an agency's (when it has no record of its own). */
  async linkToCompany(locationId: string, companyId: string): Promise<void> {
    const key = this.#keys.oauthLocation(locationId);
    await this.#redis.multi().hsetnx(key, 'source', 'from-company').hsetnx(key, 'companyId', companyId).hsetnx(key, 'gen', 0).exec();
    await this.#redis.sadd(this.#keys.oauthLocations, locationId);
  }

  async read(owner: OAuthOwner): Promise<OAuthRecord | undefined> {
    const h = await this.#redis.hgetall(this.#key(owner));
    const info = parseInfo(owner, h);
    if (info === undefined) return undefined;
    return {
      ...info,
      accessToken: h.access === undefined ? undefined : this.#cipher.open(h.access, this.#context(owner, 'access')),
      refreshToken: h.refresh === undefined ? undefined : this.#cipher.open(h.refresh, this.#context(owner, 'refresh')),
    };
  }

  /** What status shows: every record, no secret. */
  async list(): Promise<OAuthRecordInfo[]> {
    const [locations, companies] = await Promise.all([this.#redis.smembers(this.#keys.oauthLocations), this.#redis.smembers(this.#keys.oauthCompanies)]);
    const owners: OAuthOwner[] = [
      ...companies.sort().map((id) => ({ kind: 'company' as const, id })),
      ...locations.sort().map((id) => ({ kind: 'location' as const, id })),
    ];
    const records = await Promise.all(owners.map((o) => this.info(o)));
    return records.filter((r): r is OAuthRecordInfo => r !== undefined);
  }

  /** A record without its secrets (they are not even opened). */
  async info(owner: OAuthOwner): Promise<OAuthRecordInfo | undefined> {
    return parseInfo(owner, await this.#redis.hgetall(this.#key(owner)));
  }

  /** The companies with a record. */
  async companies(): Promise<string[]> {
    return (await this.#redis.smembers(this.#keys.oauthCompanies)).sort();
  }

  /** Removes a record and its tokens; true if there was one. */
  async remove(owner: OAuthOwner): Promise<boolean> {
    const removed = await this.#redis.del(this.#key(owner));
    await this.#redis.srem(this.#index(owner), owner.id);
    return removed > 0;
  }

  /** Marks a record unusable until a new authorisation (an uninstall), keeping no token. */
  async revoke(owner: OAuthOwner, reason: string): Promise<void> {
    await this.#redis.multi().hdel(this.#key(owner), 'access', 'refresh', 'lease', 'leaseUntil').hset(this.#key(owner), 'revoked', reason).exec();
  }

  /** Takes the refresh lease for generation `gen` (see commands/oauth-begin.lua). */
  async begin(owner: OAuthOwner, gen: string, leaseMs: number): Promise<BeginResult> {
    const lease = randomUUID();
    const r = await this.#redis.ghlOAuthBegin(this.#key(owner), lease, gen, leaseMs);
    switch (Number(r[0])) {
      case 0:
        return { kind: 'gone' };
      case 1:
        return { kind: 'changed' };
      case 2:
        return { kind: 'busy', waitMs: Number(r[1]) };
      case 3:
        return { kind: 'mine', lease, takenOver: Number(r[1]) === 1 };
      default:
        return { kind: 'revoked', reason: String(r[1]) };
    }
  }

  /** Stores a grant under the lease; false when the lease was lost (it outlives the HTTP timeout, so only a stalled process loses it). */
  async finish(owner: OAuthOwner, lease: string, grant: Grant, now = Date.now()): Promise<boolean> {
    const access = this.#cipher.seal(grant.accessToken, this.#context(owner, 'access'));
    const refresh = grant.refreshToken === undefined ? '' : this.#cipher.seal(grant.refreshToken, this.#context(owner, 'refresh'));
    const scope = grant.scopes?.join(' ') ?? '';
    return (await this.#redis.ghlOAuthFinish(this.#key(owner), lease, access, refresh, grant.expiresAt, now, scope)) > 0;
  }

  /** Ends the lease after a refresh that obtained nothing; returns the failures counted. */
  async fail(owner: OAuthOwner, lease: string, kind: 'revoked' | 'unavailable', reason: string, retryAt = 0): Promise<number> {
    return this.#redis.ghlOAuthFail(this.#key(owner), lease, kind, reason, retryAt);
  }

  /** The set that lists the owner's kind of records (what status reads). */
  #index(owner: OAuthOwner): string {
    return owner.kind === 'company' ? this.#keys.oauthCompanies : this.#keys.oauthLocations;
  }

  #key(owner: OAuthOwner): string {
    return owner.kind === 'company' ? this.#keys.oauthCompany(owner.id) : this.#keys.oauthLocation(owner.id);
  }

  /** What a sealed token is bound to: its record and field. */
  #context(owner: OAuthOwner, field: 'access' | 'refresh'): string {
    return `${this.#prefix}:${owner.kind}:${owner.id}:${field}`;
  }
}

function parseInfo(owner: OAuthOwner, h: Record<string, string>): OAuthRecordInfo | undefined {
  if (h.source === undefined) return undefined;
  const n = (x: string | undefined) => Number(x ?? 0);
  return {
    owner,
    source: h.source as OAuthSource,
    companyId: h.companyId,
    expiresAt: n(h.expiresAt),
    refreshedAt: h.refreshedAt === undefined ? undefined : n(h.refreshedAt),
    refreshes: n(h.refreshes),
    failures: n(h.failures),
    lastError: h.lastError,
    revoked: h.revoked,
    retryAt: n(h.retryAt),
    gen: h.gen ?? '0',
    refreshing: h.lease !== undefined && n(h.leaseUntil) > Date.now(),
    hasRefreshToken: h.refresh !== undefined,
    keyId: (h.refresh ?? h.access)?.split('.')[1],
    scopes: h.scope === undefined || h.scope === '' ? undefined : h.scope.split(' '),
  };
}
