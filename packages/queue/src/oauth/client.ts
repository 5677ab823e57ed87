/**
 * HighLevel's OAuth endpoints, as highlevel-api.md describes them: `POST /oauth/token`
 * (form-encoded; `refresh_token` and `authorization_code` grants; every refresh answers a new
 * refresh token and retires the old one) and `POST /oauth/locationToken` (a Company token asks
 * for a Location token). Answers are classified by `classifyTokenAnswer`, a pure policy: a grant,
 * a refusal that retrying cannot cure (the token is revoked or spent, the app's credentials are
 * wrong), or HighLevel unavailable for now. Secrets go in request bodies only, never in URLs,
 * errors or logs.
 */
import { z } from 'zod';
import type { Config } from '../config.ts';

export type UserType = 'Location' | 'Company';

/** What HighLevel granted. */
export interface Grant {
  accessToken: string;
  /** Absent from a location token obtained with a Company token. */
  refreshToken: string | undefined;
  /** Epoch ms. */
  expiresAt: number;
  userType: UserType | undefined;
  locationId: string | undefined;
  companyId: string | undefined;
  /** The scopes HighLevel granted (its `scope`, space-separated); undefined when the answer names none. */
  scopes: string[] | undefined;
}

export type TokenAnswer =
  | { kind: 'granted'; grant: Grant }
  /** The token or code is revoked, spent or unknown (`invalid_grant`): only a new authorisation helps. */
  | { kind: 'revoked'; reason: string }
  /** The app's own credentials are refused (GHL_CLIENT_ID / GHL_CLIENT_SECRET). */
  | { kind: 'app-refused'; reason: string }
  /** Any other refusal of this request that retrying will not change. */
  | { kind: 'refused'; reason: string }
  /** HighLevel down, slow or limiting: try again later; nothing is lost. */
  | { kind: 'unavailable'; reason: string; retryAfterMs: number | undefined };

const grantBody = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).optional(),
  expires_in: z.coerce.number().positive(),
  userType: z.enum(['Location', 'Company']).optional(),
  locationId: z.string().optional(),
  companyId: z.string().optional(),
  // Read leniently: a scope in an unexpected shape must never cost a grant.
  scope: z.unknown().optional(),
});
const errorBody = z.object({ error: z.string().optional(), error_description: z.string().optional(), message: z.unknown().optional() }).loose();

/** Classifies an answer of `/oauth/token` or `/oauth/locationToken` (status and parsed JSON body, if any). */
export function classifyTokenAnswer(status: number | undefined, body: unknown, now: number, retryAfter?: string | null): TokenAnswer {
  if (status === undefined) return { kind: 'unavailable', reason: 'no answer (network error or timeout)', retryAfterMs: undefined };
  if (status >= 200 && status < 300) {
    const parsed = grantBody.safeParse(body);
    if (!parsed.success) return { kind: 'unavailable', reason: `HighLevel answered ${status} without a usable token`, retryAfterMs: undefined };
    const g = parsed.data;
    return {
      kind: 'granted',
      grant: {
        accessToken: g.access_token,
        refreshToken: g.refresh_token,
        expiresAt: now + g.expires_in * 1000,
        userType: g.userType,
        locationId: g.locationId,
        companyId: g.companyId,
        scopes: scopesOf(g.scope),
      },
    };
  }
  if (status === 429 || status >= 500) {
    const seconds = retryAfter === null || retryAfter === undefined ? Number.NaN : Number(retryAfter);
    return { kind: 'unavailable', reason: `HighLevel answered ${status}`, retryAfterMs: Number.isFinite(seconds) ? seconds * 1000 : undefined };
  }
  const e = errorBody.safeParse(body);
  const code = e.success ? e.data.error : undefined;
  const said = e.success ? (e.data.error_description ?? (typeof e.data.message === 'string' ? e.data.message : undefined)) : undefined;
  const reason = `HighLevel answered ${status}${code === undefined ? '' : ` ${code}`}${said === undefined ? '' : `: ${said.slice(0, 200)}`}`;
  if (code === 'invalid_grant') return { kind: 'revoked', reason };
  if (code === 'invalid_client' || code === 'unauthorized_client' || (status === 401 && code === undefined)) return { kind: 'app-refused', reason };
  return { kind: 'refused', reason };
}

/** HighLevel's `scope` (space-separated text; a list is taken too), or undefined when it names none. */
function scopesOf(scope: unknown): string[] | undefined {
  const parts = typeof scope === 'string' ? scope.split(/\s+/) : Array.isArray(scope) ? scope.filter((s): s is string => typeof s === 'string') : [];
  const scopes = parts.filter((s) => s !== '');
  return scopes.length === 0 ? undefined : scopes;
}

export interface OAuthClientOptions {
  /** HighLevel's API base (GHL_API_BASE_URL): the OAuth endpoints live there too. */
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  timeoutMs: number;
  now?: () => number;
}

/** The app's client for HighLevel's OAuth endpoints, from the settings; undefined without GHL_CLIENT_ID and GHL_CLIENT_SECRET. */
export function oauthAppClient(config: Config): OAuthClient | undefined {
  const oauth = config.oauth;
  if (oauth?.clientId === undefined || oauth.clientSecret === undefined) return undefined;
  return new OAuthClient({ baseUrl: config.apiBaseUrl, clientId: oauth.clientId, clientSecret: oauth.clientSecret, timeoutMs: config.httpTimeoutMs });
}

export class OAuthClient {
  readonly #o: Required<OAuthClientOptions>;

  constructor(options: OAuthClientOptions) {
    this.#o = { now: Date.now, ...options };
  }

  /**
   * Spends a refresh token for a new pair (the old refresh token stops working if this succeeds).
   * `timeoutMs` (default: the client's) is how long its answer is waited for: an answer given up
   * on after HighLevel took the request is a pair lost (see OAuthTokens, refreshDeadlineMs).
   */
  refresh(refreshToken: string, userType: UserType, timeoutMs?: number): Promise<TokenAnswer> {
    return this.#token({ grant_type: 'refresh_token', refresh_token: refreshToken, user_type: userType }, timeoutMs);
  }

  /** Exchanges an install's authorisation code for a pair. */
  exchangeCode(code: string, redirectUri?: string): Promise<TokenAnswer> {
    return this.#token({ grant_type: 'authorization_code', code, ...(redirectUri === undefined ? {} : { redirect_uri: redirectUri }) });
  }

  /** A Location token from a Company token (`oauth.write`). */
  locationToken(companyAccessToken: string, companyId: string, locationId: string): Promise<TokenAnswer> {
    return this.#post('oauth/locationToken', { companyId, locationId }, { authorization: `Bearer ${companyAccessToken}`, version: '2021-07-28' });
  }

  #token(form: Record<string, string>, timeoutMs?: number): Promise<TokenAnswer> {
    return this.#post('oauth/token', { client_id: this.#o.clientId, client_secret: this.#o.clientSecret, ...form }, {}, timeoutMs);
  }

  async #post(path: string, form: Record<string, string>, headers: Record<string, string>, timeoutMs = this.#o.timeoutMs): Promise<TokenAnswer> {
    // A grant's life counts from when it was asked for: HighLevel cannot have issued it earlier,
    // and an answer read late (a busy process) must not make the token seem to live longer.
    const sent = this.#o.now();
    let res: Response;
    try {
      res = await fetch(new URL(path, this.#o.baseUrl.endsWith('/') ? this.#o.baseUrl : `${this.#o.baseUrl}/`), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers },
        body: new URLSearchParams(form).toString(),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch {
      return classifyTokenAnswer(undefined, undefined, sent);
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      body = undefined;
    }
    return classifyTokenAnswer(res.status, body, sent, res.headers.get('retry-after'));
  }
}
