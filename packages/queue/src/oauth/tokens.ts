/**
 * A location's OAuth access token, for the worker that posts its messages: from this process's
 * memory while it is fresh, else from the shared store, refreshed when it nears its end (or once
 * after a 401) by exactly one process across every host (the store's refresh lease), the others
 * waiting for and then using the pair it stored. A location without a record of its own gets a
 * location token from an agency (company) record, the way HighLevel's SDK does.
 *
 * What a caller gets is a typed answer, never an exception for a token problem: a token; `none`
 * (no OAuth record: other token sources may apply); `wait` (a refresh is in flight elsewhere, or
 * HighLevel is unavailable: the location waits, no message spends an attempt); `revoked` (only a
 * new authorisation helps: the location pauses with that reason, nothing is dead-lettered).
 */
import type { Logger } from 'pino';
import type { OAuthClient, TokenAnswer } from './client.ts';
import type { OAuthOwner, OAuthRecord, OAuthStore } from './store.ts';

export type AccessAnswer =
  { kind: 'token'; token: string } | { kind: 'none' } | { kind: 'wait'; ms: number; reason: string } | { kind: 'revoked'; reason: string };

/** How long before its end a token is refreshed: a quarter of its life, at most 30 s (HighLevel's SDK: 30 s). */
export function refreshAheadMs(lifetimeMs: number): number {
  return Math.max(0, Math.min(30_000, Math.floor(lifetimeMs / 4)));
}

/** How long every process leaves HighLevel alone after `failures` refreshes failed for a while: 1 s doubling to 60 s. */
export function refreshBackoffMs(failures: number): number {
  return Math.min(60_000, 1_000 * 2 ** Math.max(0, failures - 1));
}

/**
 * How long a refresh waits for HighLevel's answer, given the refresh lease: three quarters of it,
 * the rest left to store the answer while the lease is still the holder's. Not the HTTP timeout:
 * HighLevel spends a refresh token when it takes the request, so an answer given up on (a timeout,
 * in a process too busy to read it in time) is a pair lost and the next try presents a spent
 * token; while the holder keeps the lease no other process refreshes, so waiting costs nothing.
 */
export function refreshDeadlineMs(leaseMs: number): number {
  return Math.max(0, Math.floor((leaseMs * 3) / 4));
}

export interface OAuthTokensOptions {
  store: OAuthStore;
  client: OAuthClient;
  /**
   * The refresh lease: longer than an OAuth request can take (its HTTP timeout), so a living holder
   * keeps it. A refresh waits for its answer for most of it (refreshDeadlineMs).
   */
  leaseMs: number;
  logger?: Logger;
  now?: () => number;
  /**
   * Told of each refresh request this process sends HighLevel (a refresh token spent, or an
   * agency's token asked for a location's, when a stored token is due or was refused), with the
   * kind of answer: `granted`, or why not (metrics). Default: none.
   */
  onRefresh?: (answer: TokenAnswer['kind']) => void;
}

interface Cached {
  token: string;
  /** When to look at the store again (the refresh point). */
  freshUntil: number;
}

/** How long a caller waits for another process's refresh before asking again. */
const BUSY_WAIT_MS = 200;

export class OAuthTokens {
  readonly #o: OAuthTokensOptions & { now: () => number };
  readonly #cache = new Map<string, Cached>();
  /** Locations whose token was refreshed because of a 401, by the generation that refresh stored. */
  readonly #forced = new Map<string, string>();

  constructor(options: OAuthTokensOptions) {
    this.#o = { now: Date.now, ...options };
  }

  /** The access token to post a location's messages with (see the module comment). */
  async accessFor(locationId: string): Promise<AccessAnswer> {
    const cached = this.#cache.get(locationId);
    if (cached !== undefined && this.#o.now() < cached.freshUntil) return { kind: 'token', token: cached.token };
    const owner: OAuthOwner = { kind: 'location', id: locationId };
    const record = await this.#o.store.read(owner);
    if (record === undefined) return this.#fromAnAgency(locationId);
    return this.#access(record, false);
  }

  /**
   * HighLevel answered 401 to a post made with `token`. If that is still the location's token, it
   * is refreshed now (once: a 401 right after such a refresh means the authorisation itself is
   * gone); if another process has already refreshed it, the caller simply tries again.
   */
  async rejected(locationId: string, token: string): Promise<AccessAnswer> {
    this.#cache.delete(locationId);
    const record = await this.#o.store.read({ kind: 'location', id: locationId });
    if (record === undefined) return { kind: 'none' };
    if (record.accessToken !== token) return this.#access(record, false);
    // Refused again right after a refresh, while the new token was not yet due to expire: the
    // authorisation itself is gone. (A token that expired on its way, behind a long wait for a
    // rate slot, is simply refreshed again.)
    if (this.#forced.get(locationId) === record.gen && this.#o.now() < record.expiresAt - 1_000) {
      return { kind: 'revoked', reason: 'HighLevel refused the access token right after refreshing it (401): re-authorise the app for this location' };
    }
    const answer = await this.#access(record, true);
    const after = await this.#o.store.info({ kind: 'location', id: locationId });
    if (answer.kind === 'token' && after !== undefined) this.#forced.set(locationId, after.gen);
    return answer;
  }

  /** A usable token of a record, refreshing it when due (or when `force`), as one process at a time. */
  async #access(first: OAuthRecord, force: boolean): Promise<AccessAnswer> {
    let record = first;
    for (let round = 0; round < 3; round += 1) {
      if (record.revoked !== undefined) return { kind: 'revoked', reason: record.revoked };
      const now = this.#o.now();
      const usable = record.accessToken !== undefined && now < record.expiresAt - 1_000;
      const due = record.expiresAt - refreshAheadMs(record.expiresAt - (record.refreshedAt ?? record.expiresAt - 120_000));
      if (usable && !force && now < due) return this.#remember(record.owner, record.accessToken as string, due);
      if (record.retryAt > now) {
        // HighLevel is unavailable for refreshes: use what is left of the token, else wait with everyone.
        if (usable && !force) return { kind: 'token', token: record.accessToken as string };
        return { kind: 'wait', ms: record.retryAt - now, reason: record.lastError ?? 'refresh failing' };
      }
      const begun = await this.#o.store.begin(record.owner, record.gen, this.#o.leaseMs);
      switch (begun.kind) {
        case 'gone':
          return record.owner.kind === 'location' ? this.#fromAnAgency(record.owner.id) : { kind: 'none' };
        case 'revoked':
          return { kind: 'revoked', reason: begun.reason };
        case 'busy':
          if (usable && !force) return { kind: 'token', token: record.accessToken as string };
          return { kind: 'wait', ms: Math.min(begun.waitMs, BUSY_WAIT_MS), reason: 'another process is refreshing the token' };
        case 'changed':
          force = false; // the token was renewed meanwhile: use the new one
          break;
        case 'mine': {
          const answer = await this.#refresh(record);
          const outcome = await this.#settle(record, begun.lease, begun.takenOver, answer);
          if (outcome !== undefined) return outcome;
          force = false;
          break;
        }
      }
      const next = await this.#o.store.read(record.owner);
      if (next === undefined) return record.owner.kind === 'location' ? this.#fromAnAgency(record.owner.id) : { kind: 'none' };
      record = next;
    }
    return { kind: 'wait', ms: BUSY_WAIT_MS, reason: 'the token changed while it was being read' };
  }

  /** Spends the refresh token (or asks the agency for a location token). */
  async #refresh(record: OAuthRecord): Promise<TokenAnswer> {
    if (record.source === 'from-company') {
      const companyId = record.companyId ?? '';
      const company = await this.#companyAccess(companyId);
      if (company.kind !== 'token') return companyAnswer(company, companyId);
      return this.#told(await this.#o.client.locationToken(company.token, companyId, record.owner.id));
    }
    if (record.refreshToken === undefined) return { kind: 'revoked', reason: 'no refresh token stored: import one with `ingest auth import`' };
    const userType = record.owner.kind === 'company' ? 'Company' : 'Location';
    return this.#told(await this.#o.client.refresh(record.refreshToken, userType, refreshDeadlineMs(this.#o.leaseMs)));
  }

  /** A refresh request's answer, after telling `onRefresh`. */
  #told(answer: TokenAnswer): TokenAnswer {
    this.#o.onRefresh?.(answer.kind);
    return answer;
  }

  /** Stores what a refresh brought (or why it brought nothing); undefined: read the record again. */
  async #settle(record: OAuthRecord, lease: string, takenOver: boolean, answer: TokenAnswer): Promise<AccessAnswer | undefined> {
    const { owner } = record;
    const who = `${owner.kind} ${owner.id}`;
    switch (answer.kind) {
      case 'granted': {
        if (!(await this.#o.store.finish(owner, lease, answer.grant, this.#o.now()))) return undefined;
        this.#o.logger?.info(
          { [owner.kind === 'location' ? 'locationId' : 'companyId']: owner.id, expiresAt: new Date(answer.grant.expiresAt).toISOString() },
          'OAuth token refreshed',
        );
        const lifetime = answer.grant.expiresAt - this.#o.now();
        return this.#remember(owner, answer.grant.accessToken, answer.grant.expiresAt - refreshAheadMs(lifetime));
      }
      case 'revoked':
      case 'refused': {
        if (owner.kind === 'location' && record.source === 'location') {
          // As HighLevel's SDK does: a location whose own refresh fails asks its agency for a token.
          const rescued = await this.#agencyGrant(owner.id);
          if (rescued?.kind === 'granted') {
            await this.#o.store.fail(owner, lease, 'revoked', answer.reason);
            await this.#o.store.remove(owner);
            this.#o.logger?.warn(
              { locationId: owner.id, companyId: rescued.companyId, reason: answer.reason },
              'OAuth refresh refused; the agency gave the location a token',
            );
            return this.#adopt(owner.id, rescued.companyId, rescued.answer);
          }
        }
        const reason =
          `${who}: ${answer.reason}; re-authorise the app (install it again, or \`ingest auth import\` a new refresh token)` +
          (takenOver ? ' (a process died while refreshing this token, so HighLevel may have spent it without our storing the new one)' : '');
        await this.#o.store.fail(owner, lease, 'revoked', reason);
        this.#o.logger?.error({ [owner.kind === 'location' ? 'locationId' : 'companyId']: owner.id, reason: answer.reason }, 'OAuth refresh refused for good');
        return { kind: 'revoked', reason };
      }
      case 'app-refused':
      case 'unavailable': {
        const retryAfter = answer.kind === 'unavailable' ? answer.retryAfterMs : 60_000;
        const failures = record.failures + 1;
        const waitMs = Math.max(retryAfter ?? 0, refreshBackoffMs(failures));
        const reason =
          answer.kind === 'app-refused' ? `HighLevel refused the app's credentials (GHL_CLIENT_ID / GHL_CLIENT_SECRET): ${answer.reason}` : answer.reason;
        await this.#o.store.fail(owner, lease, 'unavailable', reason, this.#o.now() + waitMs);
        this.#o.logger?.warn(
          { [owner.kind === 'location' ? 'locationId' : 'companyId']: owner.id, reason, waitMs },
          'OAuth refresh failed for now; retrying later',
        );
        if (record.accessToken !== undefined && this.#o.now() < record.expiresAt - 1_000) return { kind: 'token', token: record.accessToken };
        return { kind: 'wait', ms: waitMs, reason };
      }
    }
  }

  /** An agency's access token (its own record, refreshed like a location's). */
  async #companyAccess(companyId: string): Promise<AccessAnswer> {
    const record = await this.#o.store.read({ kind: 'company', id: companyId });
    if (record === undefined) return { kind: 'none' };
    return this.#access(record, false);
  }

  /** A location with no record: the first agency that gets a location token for it becomes its source. */
  async #fromAnAgency(locationId: string): Promise<AccessAnswer> {
    const found = await this.#agencyGrant(locationId);
    if (found === undefined) return { kind: 'none' };
    if (found.kind !== 'granted') return found;
    return this.#adopt(locationId, found.companyId, found.answer);
  }

  /** The first agency (company) that gives a location token for the location; a wait when one is refreshing or HighLevel is unavailable. */
  async #agencyGrant(locationId: string): Promise<{ kind: 'granted'; companyId: string; answer: TokenAnswer } | (AccessAnswer & { kind: 'wait' }) | undefined> {
    let waiting: (AccessAnswer & { kind: 'wait' }) | undefined;
    for (const companyId of await this.#o.store.companies()) {
      const company = await this.#companyAccess(companyId);
      if (company.kind === 'wait') waiting ??= company; // its token is being refreshed: ask again soon
      if (company.kind !== 'token') continue;
      const answer = await this.#o.client.locationToken(company.token, companyId, locationId);
      if (answer.kind === 'unavailable') return { kind: 'wait', ms: refreshBackoffMs(1), reason: answer.reason };
      if (answer.kind === 'granted') return { kind: 'granted', companyId, answer };
      // Anything else: not installed there.
    }
    return waiting;
  }

  /** Makes the agency the location's source and stores the location token it gave. */
  async #adopt(locationId: string, companyId: string, answer: TokenAnswer): Promise<AccessAnswer> {
    await this.#o.store.linkToCompany(locationId, companyId);
    const record = await this.#o.store.read({ kind: 'location', id: locationId });
    if (record === undefined) return { kind: 'none' };
    const begun = await this.#o.store.begin(record.owner, record.gen, this.#o.leaseMs);
    if (begun.kind !== 'mine') return this.#access(record, false);
    return (await this.#settle(record, begun.lease, false, answer)) ?? { kind: 'wait', ms: BUSY_WAIT_MS, reason: 'linking the location to its agency' };
  }

  /** A location's token is kept in this process's memory until its refresh point (an agency's is read each time it is needed). */
  #remember(owner: OAuthOwner, token: string, freshUntil: number): AccessAnswer {
    if (owner.kind === 'location') this.#cache.set(owner.id, { token, freshUntil });
    return { kind: 'token', token };
  }
}

/** A location token cannot be had because its agency's token cannot: say so for the location. */
function companyAnswer(company: AccessAnswer, companyId: string): TokenAnswer {
  if (company.kind === 'wait') return { kind: 'unavailable', reason: `agency ${companyId}: ${company.reason}`, retryAfterMs: company.ms };
  if (company.kind === 'revoked') return { kind: 'revoked', reason: `agency ${companyId}: ${company.reason}` };
  return { kind: 'revoked', reason: `agency ${companyId} has no OAuth record` };
}
