/**
 * A throttle for the install redirect (`GET /oauth/callback`): the route is open to anyone (it is
 * HighLevel that sends people there) and every hit costs a token exchange made with the client
 * secret, so a loop of hits would spend HighLevel's rate limit for the app and fill its logs. Token
 * buckets, one per client address and one for all: a person installing takes one or two; a flood
 * gets 429 with Retry-After. In memory, per intake process: the bound is per process, which is
 * enough to keep a flood from turning into a flood of exchanges.
 */

export interface BucketOptions {
  /** Hits allowed at once. */
  burst: number;
  /** Hits given back per minute. */
  perMinute: number;
}

export interface CallbackThrottleOptions {
  /** Per client address. Default 10 at once, 10 a minute. */
  perClient?: BucketOptions;
  /** For all clients together. Default 60 at once, 60 a minute. */
  overall?: BucketOptions;
  /** Addresses remembered at most (the oldest are forgotten first). Default 10,000. */
  maxClients?: number;
  now?: () => number;
}

export type ThrottleAnswer = { ok: true } | { ok: false; retryAfterSeconds: number; scope: 'client' | 'overall' };

interface Bucket {
  tokens: number;
  at: number;
}

export class CallbackThrottle {
  readonly #perClient: BucketOptions;
  readonly #overall: BucketOptions;
  readonly #maxClients: number;
  readonly #now: () => number;
  readonly #clients = new Map<string, Bucket>();
  readonly #all: Bucket;

  constructor(options: CallbackThrottleOptions = {}) {
    this.#perClient = options.perClient ?? { burst: 10, perMinute: 10 };
    this.#overall = options.overall ?? { burst: 60, perMinute: 60 };
    this.#maxClients = options.maxClients ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#all = { tokens: this.#overall.burst, at: this.#now() };
  }

  /** Takes one hit for `client` (its address) from both buckets, or says how long to wait. */
  take(client: string): ThrottleAnswer {
    const now = this.#now();
    const own = this.#clients.get(client) ?? { tokens: this.#perClient.burst, at: now };
    refill(own, this.#perClient, now);
    refill(this.#all, this.#overall, now);
    // Re-inserted so the map's order is least recently seen first.
    this.#clients.delete(client);
    this.#clients.set(client, own);
    if (this.#clients.size > this.#maxClients) this.#clients.delete(this.#clients.keys().next().value as string);
    if (own.tokens < 1) return { ok: false, retryAfterSeconds: waitFor(own, this.#perClient), scope: 'client' };
    if (this.#all.tokens < 1) return { ok: false, retryAfterSeconds: waitFor(this.#all, this.#overall), scope: 'overall' };
    own.tokens -= 1;
    this.#all.tokens -= 1;
    return { ok: true };
  }
}

function refill(bucket: Bucket, options: BucketOptions, now: number): void {
  const elapsed = Math.max(0, now - bucket.at);
  bucket.tokens = Math.min(options.burst, bucket.tokens + (elapsed * options.perMinute) / 60_000);
  bucket.at = now;
}

/** Whole seconds until the bucket holds one token again. */
function waitFor(bucket: Bucket, options: BucketOptions): number {
  return Math.max(1, Math.ceil(((1 - bucket.tokens) * 60) / options.perMinute));
}
