/**
 * The stand-in's OAuth, as highlevel-api.md describes HighLevel's: `POST /oauth/token`
 * (form-encoded; `refresh_token` and `authorization_code` grants; each refresh answers a new pair
 * and retires the refresh token it spent, and spending a retired one is `invalid_grant`) and
 * `POST /oauth/locationToken` (a Company token asks for a Location token where the app is
 * installed). Access tokens expire (`accessTtlMs`); the inbound endpoint then answers 401. Counts
 * refreshes, reuse of retired refresh tokens, and refresh answers that never reached the client.
 */
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

export type OAuthOwner = { kind: 'location'; id: string } | { kind: 'company'; id: string };

export interface OAuthSettings {
  clientId: string;
  clientSecret: string;
  /** How long an access token lives. HighLevel: 86,399 s. */
  accessTtlMs: number;
}

export interface OAuthStats {
  /** Refresh tokens spent successfully. */
  refreshes: number;
  /** A retired (already spent) refresh token presented again: what single flight must prevent. */
  reuse: number;
  /** Whose refresh tokens were presented again (`location:<id>` or `company:<id>`), once each. */
  reusedBy: string[];
  /** Refresh tokens refused because they were revoked (uninstalled), not reused. */
  revokedRefused: number;
  codeExchanges: number;
  locationTokens: number;
  /** Refreshes whose answer never reached the client (it had gone): its new pair is lost with it. */
  answersLost: number;
  /** Inbound posts refused because their access token had expired. */
  expiredAccess: number;
}

type RefreshState = 'live' | 'spent' | 'revoked';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

export class FakeOAuth {
  settings: OAuthSettings;
  readonly #refresh = new Map<string, { owner: OAuthOwner; state: RefreshState }>();
  readonly #access = new Map<string, { owner: OAuthOwner; expiresAt: number }>();
  readonly #codes = new Map<string, OAuthOwner>();
  /** Company → the locations where the app is installed. */
  readonly #installs = new Map<string, Set<string>>();
  #stats: OAuthStats = emptyOAuthStats();
  /** The marketplace's webhook signing key (Ed25519, as HighLevel's since July 2026). */
  readonly #webhookKeys: { publicKey: KeyObject; privateKey: KeyObject } = generateKeyPairSync('ed25519');

  constructor(settings: OAuthSettings) {
    this.settings = settings;
  }

  /** The public key an app verifies marketplace webhooks with (PEM): what GHL_WEBHOOK_PUBLIC_KEY holds. */
  get webhookPublicKey(): string {
    return this.#webhookKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  }

  /** X-GHL-Signature for a webhook body: Ed25519 over its exact bytes, base64. */
  signWebhook(body: string): string {
    return sign(null, Buffer.from(body, 'utf8'), this.#webhookKeys.privateKey).toString('base64');
  }

  /** An authorisation, as an install gives one: a live refresh token (and an access token) for the owner. */
  authorise(owner: OAuthOwner, now = Date.now()): { refreshToken: string; accessToken: string; expiresAt: number } {
    const refreshToken = token('rt');
    this.#refresh.set(refreshToken, { owner, state: 'live' });
    const { accessToken, expiresAt } = this.#issueAccess(owner, now);
    return { refreshToken, accessToken, expiresAt };
  }

  /** An install's authorisation code, exchanged once at /oauth/token. */
  addCode(code: string, owner: OAuthOwner): void {
    this.#codes.set(code, owner);
  }

  /** The app is installed in these locations of the company (what /oauth/locationToken allows). */
  install(companyId: string, locationIds: string[]): void {
    const set = this.#installs.get(companyId) ?? new Set<string>();
    for (const id of locationIds) set.add(id);
    this.#installs.set(companyId, set);
  }

  /** Uninstall or revoke: the owner's refresh and access tokens stop working (not counted as reuse). */
  revoke(owner: OAuthOwner): void {
    for (const entry of this.#refresh.values()) if (sameOwner(entry.owner, owner) && entry.state === 'live') entry.state = 'revoked';
    for (const [t, a] of this.#access) if (sameOwner(a.owner, owner)) this.#access.delete(t);
  }

  /** The location an access token stands for; `expired` past its time; undefined if unknown. */
  locationOf(accessToken: string, now = Date.now()): { locationId: string } | 'expired' | undefined {
    const a = this.#access.get(accessToken);
    if (a === undefined || a.owner.kind !== 'location') return undefined;
    if (now >= a.expiresAt) {
      this.#stats.expiredAccess += 1;
      return 'expired';
    }
    return { locationId: a.owner.id };
  }

  /** The client had gone when its refresh was answered: the pair it was given is lost. */
  answerLost(): void {
    this.#stats.answersLost += 1;
  }

  stats(): OAuthStats {
    return { ...this.#stats, reusedBy: [...this.#stats.reusedBy] };
  }

  /** Every token issued so far, refresh and access (for tests that search for leaked secrets). */
  issued(): string[] {
    return [...this.#refresh.keys(), ...this.#access.keys()];
  }

  reset(): void {
    this.#stats = emptyOAuthStats();
  }

  /** `POST /oauth/token` with its form fields. */
  token(form: Record<string, string | undefined>, now = Date.now()): Answer & { refreshed?: true } {
    if (form.client_id !== this.settings.clientId || form.client_secret !== this.settings.clientSecret) {
      return { status: 401, body: { error: 'invalid_client', error_description: 'Invalid client credentials' } };
    }
    if (form.grant_type === 'authorization_code') {
      const owner = form.code === undefined ? undefined : this.#codes.get(form.code);
      if (owner === undefined) return { status: 400, body: { error: 'invalid_grant', error_description: 'Invalid authorization code' } };
      this.#codes.delete(form.code as string);
      this.#stats.codeExchanges += 1;
      return { status: 200, body: this.#pair(owner, now) };
    }
    if (form.grant_type === 'refresh_token') {
      const entry = form.refresh_token === undefined ? undefined : this.#refresh.get(form.refresh_token);
      if (entry === undefined) return { status: 400, body: { error: 'invalid_grant', error_description: 'Invalid refresh token' } };
      if (entry.state === 'spent') {
        this.#stats.reuse += 1;
        const who = `${entry.owner.kind}:${entry.owner.id}`;
        if (!this.#stats.reusedBy.includes(who)) this.#stats.reusedBy.push(who);
        return { status: 400, body: { error: 'invalid_grant', error_description: 'Refresh token already used' } };
      }
      if (entry.state === 'revoked') {
        this.#stats.revokedRefused += 1;
        return { status: 400, body: { error: 'invalid_grant', error_description: 'Refresh token revoked' } };
      }
      const expected = entry.owner.kind === 'company' ? 'Company' : 'Location';
      if (form.user_type !== undefined && form.user_type !== expected) {
        return { status: 422, body: { error: 'invalid_request', error_description: `user_type must be ${expected} for this token` } };
      }
      entry.state = 'spent';
      this.#stats.refreshes += 1;
      return { status: 200, body: this.#pair(entry.owner, now), refreshed: true };
    }
    return { status: 422, body: { error: 'unsupported_grant_type', error_description: 'grant_type must be authorization_code or refresh_token' } };
  }

  /** `POST /oauth/locationToken`: the bearer must be a live Company token of `companyId`, installed in `locationId`. */
  locationToken(bearer: string | undefined, form: Record<string, string | undefined>, now = Date.now()): Answer {
    const a = bearer === undefined ? undefined : this.#access.get(bearer);
    if (a === undefined || a.owner.kind !== 'company' || now >= a.expiresAt) return { status: 401, body: { statusCode: 401, message: 'Invalid JWT' } };
    if (form.companyId !== a.owner.id) return { status: 400, body: { statusCode: 400, message: 'companyId does not match the token' } };
    if (form.locationId === undefined || this.#installs.get(a.owner.id)?.has(form.locationId) !== true) {
      return { status: 400, body: { statusCode: 400, message: 'The app is not installed in this location' } };
    }
    this.#stats.locationTokens += 1;
    const owner: OAuthOwner = { kind: 'location', id: form.locationId };
    const { accessToken, expiresAt } = this.#issueAccess(owner, now);
    return {
      status: 200,
      body: {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: Math.round((expiresAt - now) / 1000),
        userType: 'Location',
        locationId: owner.id,
        companyId: a.owner.id,
      },
    };
  }

  #pair(owner: OAuthOwner, now: number): Record<string, unknown> {
    const refreshToken = token('rt');
    this.#refresh.set(refreshToken, { owner, state: 'live' });
    const { accessToken, expiresAt } = this.#issueAccess(owner, now);
    return {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: Math.max(1, Math.round((expiresAt - now) / 1000)),
      refresh_token: refreshToken,
      scope: 'conversations/message.write conversations/message.readonly oauth.write',
      userType: owner.kind === 'company' ? 'Company' : 'Location',
      ...(owner.kind === 'location' ? { locationId: owner.id } : { companyId: owner.id, approvedLocations: [...(this.#installs.get(owner.id) ?? [])] }),
      userId: 'stand-in-user',
      planId: 'stand-in-plan',
      isBulkInstallation: false,
    };
  }

  #issueAccess(owner: OAuthOwner, now: number): { accessToken: string; expiresAt: number } {
    const accessToken = token('at');
    const expiresAt = now + this.settings.accessTtlMs;
    this.#access.set(accessToken, { owner, expiresAt });
    return { accessToken, expiresAt };
  }
}

function sameOwner(a: OAuthOwner, b: OAuthOwner): boolean {
  return a.kind === b.kind && a.id === b.id;
}

function token(kind: string): string {
  return `${kind}-${randomBytes(18).toString('base64url')}`;
}

function emptyOAuthStats(): OAuthStats {
  return { refreshes: 0, reuse: 0, reusedBy: [], revokedRefused: 0, codeExchanges: 0, locationTokens: 0, answersLost: 0, expiredAccess: 0 };
}
