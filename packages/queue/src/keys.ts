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

/**
 * The keys several modules share. A location's other keys belong to the module that owns them
 * (see `location/`): the ready set's, the holds', the registry's, the writers', the repair's,
 * the lookups' and the import record's.
 */
export interface Keys {
  /** Delivery ledger entry of one message: `{ messageId, at }`, kept GHL_LEDGER_TTL_DAYS (read and written by the limiter's scripts; written back by location/ledger-writeback.ts). */
  ledger(locationId: string, key: string): string;
  /** Rate-limit state of a location (the limiter's own keys start with this). */
  rate(locationId: string): string;
  /** HASH: a location's outcomes so far (delivered and skipped by the limiter's scripts; dead and lookups by location/outcomes.ts), for `status`. */
  stats(locationId: string): string;
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
}

export function keysFor(prefix: string): Keys {
  return {
    ledger: (locationId, key) => `${prefix}:ledger:{${locationId}}:${key}`,
    rate: (locationId) => `${prefix}:rate:{${locationId}}`,
    stats: (locationId) => `${prefix}:stats:{${locationId}}`,
    metricsReporter: `${prefix}:metrics:reporter`,
    oauthLocation: (locationId) => `${prefix}:oauth:{${locationId}}`,
    oauthCompany: (companyId) => `${prefix}:oauth:company:{${companyId}}`,
    oauthLocations: `${prefix}:oauth:locations`,
    oauthCompanies: `${prefix}:oauth:companies`,
  };
}

/** The id of a message's dead-letter record (and what `dlq show` takes): `<locationId>.<key>`. */
export function deadLetterId(locationId: string, key: string): string {
  return `${locationId}.${key}`;
}
