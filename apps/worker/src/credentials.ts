/**
 * What a location's messages are posted with, from the three sources side by side: its own token
 * in GHL_TOKENS_FILE; else its OAuth token (its own refresh token, or its agency's), when the
 * worker runs as a marketplace app (GHL_CLIENT_ID); else GHL_TOKEN. The answer is typed: a token,
 * a wait (an OAuth refresh is in flight elsewhere, or HighLevel cannot refresh now: no attempt is
 * spent), or a pause with the reason a person needs (no token at all, or an authorisation gone).
 */
import type { AccessAnswer, OAuthTokens } from '@ghl-ingest/queue';
import type { TokenStore } from './tokens.ts';

export type Credential = { kind: 'token'; token: string; oauth: boolean } | { kind: 'wait'; ms: number; reason: string } | { kind: 'paused'; reason: string };

const NONE = 'no token configured for this location (GHL_TOKENS_FILE, GHL_TOKEN, or an OAuth token from `ingest auth import`)';

/**
 * How long a location found without OAuth tokens posts with GHL_TOKEN before the store is read
 * again: without it, each of its messages would cost Redis reads (and, with agencies, a location
 * token request each). Tokens stored for it later (`auth import`, an install) take over within this.
 */
export const NO_OAUTH_RECHECK_MS = 30_000;

export class Credentials {
  readonly #statics: TokenStore;
  readonly #oauth: OAuthTokens | undefined;
  readonly #now: () => number;
  /** Locations OAuth had nothing for, posting with GHL_TOKEN: until when not to ask again. */
  readonly #withoutOAuth = new Map<string, number>();

  constructor(statics: TokenStore, oauth: OAuthTokens | undefined, now: () => number = Date.now) {
    this.#statics = statics;
    this.#oauth = oauth;
    this.#now = now;
  }

  async forLocation(locationId: string): Promise<Credential> {
    const own = this.#statics.fromFile(locationId);
    if (own !== undefined) return { kind: 'token', token: own, oauth: false };
    const fallback = this.#statics.fallback;
    if (this.#oauth !== undefined && !(fallback !== undefined && this.#now() < (this.#withoutOAuth.get(locationId) ?? 0))) {
      const credential = fromOAuth(await this.#oauth.accessFor(locationId));
      if (credential !== undefined) return credential;
      // Without a fallback the location pauses, and nothing is asked until it is resumed.
      if (fallback !== undefined) this.#withoutOAuth.set(locationId, this.#now() + NO_OAUTH_RECHECK_MS);
    }
    return fallback === undefined ? { kind: 'paused', reason: NONE } : { kind: 'token', token: fallback, oauth: false };
  }

  /**
   * HighLevel answered 401 to `used`. An OAuth token is refreshed (once) and the message goes
   * again; a static token cannot be helped: undefined, and the location pauses.
   */
  async rejected(locationId: string, used: Credential & { kind: 'token' }): Promise<Credential | undefined> {
    if (!used.oauth || this.#oauth === undefined) return undefined;
    return fromOAuth(await this.#oauth.rejected(locationId, used.token));
  }
}

/** OAuth's answer as a credential; undefined when OAuth has no token for the location. */
function fromOAuth(answer: AccessAnswer): Credential | undefined {
  switch (answer.kind) {
    case 'token':
      return { kind: 'token', token: answer.token, oauth: true };
    case 'wait':
      return answer;
    case 'revoked':
      return { kind: 'paused', reason: answer.reason };
    case 'none':
      return undefined;
  }
}
