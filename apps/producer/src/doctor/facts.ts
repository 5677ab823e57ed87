/**
 * What `ingest doctor` judges: the facts gathered (gather.ts) and the findings the policies make
 * of them (redis-policy.ts, token-policy.ts). Types and small shared helpers only; no I/O.
 *
 * Severities: a `blocker` loses or refuses messages (the command exits 1); a `warning` costs
 * something a person should know of (a window of loss, duplicates possible, a check that could
 * not be made); `ok` says what was seen.
 */
import type { OAuthRecordInfo } from '@ghl-ingest/queue';

export type Severity = 'ok' | 'warning' | 'blocker';

export interface Finding {
  /** `<area>.<name>`: `redis.maxmemory-policy`, `tokens.locations`, `oauth.scope.contacts.write`... */
  check: string;
  status: Severity;
  detail: string;
  fix?: string;
}

/** A fact a server may refuse to give (CONFIG renamed on managed services, a command an ACL denies). */
export type Read<T> = { known: true; value: T } | { known: false; why: string };

/** Whether the server let us do something our processes need. */
export type Probe = { allowed: true } | { allowed: false; why: string };

/** Redis's clock against ours: Redis minus ours at the sample's midpoint, and the sample's half round trip. */
export interface ClockSample {
  offsetMs: number;
  uncertaintyMs: number;
}

/** What one Redis (or one cluster master) says about itself. */
export interface NodeFacts {
  /** `host:port`. */
  node: string;
  version: Read<string>;
  maxmemoryPolicy: Read<string>;
  /** Bytes; `maxmemory` 0 is no limit. */
  memory: Read<{ maxmemory: number; used: number }>;
  aofEnabled: Read<boolean>;
  appendfsync: Read<string>;
  /** RDB save points, `''` for none. */
  savePoints: Read<string>;
  clock: Read<ClockSample>;
}

export type RedisMode =
  /** One Redis: `role` of INFO replication (`master`, `slave`) and its connected replicas. */
  | { kind: 'single'; role: Read<{ role: string; replicas: number }> }
  /** A cluster: its replicas, counted in CLUSTER NODES. */
  | { kind: 'cluster'; replicas: Read<number> };

export interface RedisFacts {
  mode: RedisMode;
  /** The one Redis, or every cluster master. */
  masters: NodeFacts[];
  /** EVAL and EVALSHA of a trivial script on a key under QUEUE_PREFIX. */
  lua: Probe;
  /** A SUBSCRIBE/PUBLISH round trip on a channel under QUEUE_PREFIX. */
  pubsub: Probe;
  /** CLIENT SETNAME, with which every connection names itself. */
  clientName: Probe;
}

export type RedisReach = { reachable: true; where: string; facts: RedisFacts } | { reachable: false; where: string; why: string; setting: string };

/** GHL_TOKENS_FILE as the worker would read it: location ids only, never a token. */
export type TokensFile = { kind: 'unset' } | { kind: 'bad'; path: string; why: string } | { kind: 'read'; path: string; locations: ReadonlySet<string> };

export type OAuthFacts =
  /** GHL_TOKEN_KEY unset: no OAuth. */
  | { kind: 'off' }
  | { kind: 'bad-key'; why: string }
  /** The store could not be read (Redis unreachable). */
  | { kind: 'unread' }
  /** `refreshes`: GHL_CLIENT_ID and GHL_CLIENT_SECRET are set here, so workers here use the store. */
  | { kind: 'read'; refreshes: boolean; records: readonly OAuthRecordInfo[] };

export interface TokenFacts {
  /** The registry's locations (every one that ever had a message enqueued); undefined when Redis is unreachable. */
  known: Read<readonly string[]> | undefined;
  file: TokensFile;
  /** GHL_TOKEN is set. */
  fallback: boolean;
  oauth: OAuthFacts;
  /** GHL_RECONCILE=on: lookups need the read scope. */
  reconcile: boolean;
}

/** `--api`: one request to GHL_API_BASE_URL without a token. */
export type ApiFacts =
  | { asked: false }
  | { asked: true; url: string; answer: { answered: true; status: number; ms: number; clock: ClockSample | undefined } | { answered: false; why: string } };

export interface DoctorFacts {
  redis: RedisReach;
  tokens: TokenFacts;
  api: ApiFacts;
  now: number;
}

const ORDER: Record<Severity, number> = { ok: 0, warning: 1, blocker: 2 };

/** The graver of two severities. */
export function worse(a: Severity, b: Severity): Severity {
  return ORDER[b] > ORDER[a] ? b : a;
}

/** At most this many ids named in a finding; the rest are counted. */
const NAMED = 10;

/** Ids for a finding: the first ten, and how many more. */
export function named(ids: readonly string[]): string {
  return ids.length <= NAMED ? ids.join(', ') : `${ids.slice(0, NAMED).join(', ')} and ${ids.length - NAMED} more`;
}
