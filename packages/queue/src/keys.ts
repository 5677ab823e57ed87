/**
 * The Redis layout. One BullMQ queue per location, named `loc.{<locationId>}`; every other
 * per-location key carries the same `{<locationId>}` hash tag, so on Redis Cluster a location's
 * queue, ledger, rate state and pause state share one slot (and Lua scripts may touch them together).
 */
export const DEAD_LETTER_QUEUE = 'dead-letter';

/**
 * The dead-letter queue's name. BullMQ's scripts touch several keys of a queue at once, so on
 * Redis Cluster they must share a slot: there the name carries a hash tag, `{dead-letter}`, which
 * puts the whole queue in one slot by design (dead letters are few, read by people, and `dlq`
 * filters them together). On one Redis the name stays as it always was, so existing records stay
 * where they are.
 */
export function deadLetterQueueName(onCluster: boolean): string {
  return onCluster ? `{${DEAD_LETTER_QUEUE}}` : DEAD_LETTER_QUEUE;
}

export function locationQueueName(locationId: string): string {
  return `loc.{${locationId}}`;
}

/** The location of a queue name, or undefined for queues that are not a location's. */
export function locationOfQueue(queueName: string): string | undefined {
  return /^loc\.\{([A-Za-z0-9_-]+)\}$/.exec(queueName)?.[1];
}

export interface Keys {
  /** SET of every location that ever had a message enqueued. */
  locations: string;
  /** ZSET: locations with work, scored by when one may be taken (see `commands/claim.lua`). */
  ready: string;
  /** ZSET: due locations with live messages, taken before the others. */
  readyLive: string;
  /** HASH: location -> the score of the lease a worker holds on it. */
  leases: string;
  /** Pub/sub channel: locations became due; idle dispatchers wake up. */
  wakeChannel: string;
  /** Delivery ledger entry of one message: `{ messageId, at }`, kept GHL_LEDGER_TTL_DAYS. */
  ledger(locationId: string, key: string): string;
  /** HASH: why a location is paused or parked (state, reason, since, until). */
  state(locationId: string): string;
  /** SET: locations with a `state` hash (paused or parked), so readers need not scan every location. */
  held: string;
  /** Rate-limit state of a location (the limiter's own keys start with this). */
  rate(locationId: string): string;
  /** HASH: a location's outcomes so far (delivered, skipped, dead, lookups by result), for `status`. */
  stats(locationId: string): string;
  /** STRING: lookups (reconcile) a location made in one minute (`minute`: epoch minutes), expiring. */
  lookups(locationId: string, minute: number): string;
  /** HASH: one import's checkpoint and counts. */
  importRecord(importId: string): string;
  /** STRING: the worker that reports the shared gauges (queue depths) to Prometheus, with a TTL. */
  metricsReporter: string;
  /** HASH: a location's OAuth record (sealed tokens, expiry, generation, refresh lease); see oauth/store.ts. */
  oauthLocation(locationId: string): string;
  /** HASH: an agency's (company's) OAuth record. */
  oauthCompany(companyId: string): string;
  /** SET: locations with an OAuth record (for `auth status`). */
  oauthLocations: string;
  /** SET: companies with an OAuth record. */
  oauthCompanies: string;
  /** STRING: the Redis run id(s) the shared structures were last checked against (see LocationState.repairAfterLoss). */
  redisRun: string;
  /** STRING: the process checking them now, with a TTL. */
  repairLock: string;
  /** ZSET: worker id -> when it last said it was alive (Redis time, ms): who may remember ledger entries Redis lost. */
  writers: string;
  /** SET: the workers that wrote their remembered ledger entries back to the Redis run `runId`. */
  restored(runId: string): string;
}

export function keysFor(prefix: string): Keys {
  return {
    locations: `${prefix}:locations`,
    // One hash slot for the dispatcher's structures, by design: its scripts touch them together
    // and nothing else (no location's keys), so they run on Redis Cluster.
    ready: `${prefix}:{ready}`,
    readyLive: `${prefix}:{ready}:live`,
    leases: `${prefix}:{ready}:leases`,
    wakeChannel: `${prefix}:wake`,
    ledger: (locationId, key) => `${prefix}:ledger:{${locationId}}:${key}`,
    state: (locationId) => `${prefix}:state:{${locationId}}`,
    held: `${prefix}:held`,
    rate: (locationId) => `${prefix}:rate:{${locationId}}`,
    stats: (locationId) => `${prefix}:stats:{${locationId}}`,
    lookups: (locationId, minute) => `${prefix}:lookups:{${locationId}}:${minute}`,
    importRecord: (importId) => `${prefix}:import:${importId}`,
    metricsReporter: `${prefix}:metrics:reporter`,
    oauthLocation: (locationId) => `${prefix}:oauth:{${locationId}}`,
    oauthCompany: (companyId) => `${prefix}:oauth:company:{${companyId}}`,
    oauthLocations: `${prefix}:oauth:locations`,
    oauthCompanies: `${prefix}:oauth:companies`,
    redisRun: `${prefix}:redis-run`,
    repairLock: `${prefix}:repair`,
    // One slot for both: their script reads them together.
    writers: `${prefix}:{writers}`,
    restored: (runId) => `${prefix}:{writers}:restored:${runId}`,
  };
}

/** The id of a message's dead-letter record (and what `dlq show` takes): `<locationId>.<key>`. */
export function deadLetterId(locationId: string, key: string): string {
  return `${locationId}.${key}`;
}
