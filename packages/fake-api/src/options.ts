/** Everything about the stand-in that can be set at start and changed at run time. */
import type { RateLimits } from './rate-window.ts';

export interface Faults {
  /** Probability (0-1) of answering 500 without touching the message. */
  status500: number;
  /** Probability of 502. */
  status502: number;
  /** Probability of 503. */
  status503: number;
  /** Probability of resetting the connection before the message is processed. */
  drop: number;
  /** Probability of recording the message, then resetting the connection (the client cannot know it landed). */
  dropAfterAccept: number;
  /** Probability of answering 201 with an empty body, creating nothing (seen on the real API). */
  empty201: number;
  /** Probability of recording the message, then answering only after `slowAfterAcceptMs` (past a client's timeout). */
  slowAfterAccept: number;
  slowAfterAcceptMs: number;
}

export interface Latency {
  /** Uniform latency between these bounds, in ms. Default 0-0. */
  minMs: number;
  maxMs: number;
  /** Probability that an answer takes `slowMs` instead (near or past a client's timeout). */
  slowProbability: number;
  slowMs: number;
}

/** The contact fields an upsert looks an existing contact up by. */
export type ContactMatchField = 'email' | 'phone';

/** A location's "Allow Duplicate Contact" setting, as the upsert follows it. */
export interface DuplicateRule {
  /**
   * Fields looked up, in this order, to find the contact an upsert updates; when two different
   * contacts match, the first field's wins and the second field is left off the update.
   * Default `['email', 'phone']`.
   */
  contactMatch: ContactMatchField[];
  /**
   * The location allows duplicates: an upsert with `createNewIfDuplicateAllowed: true` then creates
   * a contact without looking. Without that flag the upsert matches as usual (HighLevel's spec,
   * "Scenario 3"). Default false.
   */
  allowDuplicates: boolean;
}

export interface FakeHighLevelConfig {
  /** Accepted bearer tokens and the location each belongs to. `null` (default): any token, its own location. */
  tokens: Record<string, string> | null;
  limits: RateLimits;
  /** Limits for particular locations, over `limits`. */
  perLocation: Record<string, Partial<RateLimits>>;
  faults: Faults;
  latency: Latency;
  /** Send `Retry-After` (seconds) on 429. HighLevel documents none, so off by default. */
  retryAfter: boolean;
  /** Provider ids that exist; others answer 400 "Invalid conversationProviderId". `null`: any. */
  providers: string[] | null;
  /** Keep every accepted body (tests); off keeps a hash only (benchmarks of millions). */
  recordBodies: boolean;
  /**
   * A `message` length HighLevel refuses with 422 (it documents none, but may have one); `null`: none.
   * Lets tests get a genuine 422 for a body our own schema accepts.
   */
  maxMessageChars: number | null;
  /**
   * The read side (`GET /conversations/{id}/messages`): whether each message carries its `altId`
   * (a 2026 spec revision dropped it from one response), and whether tokens may read at all
   * (the `conversations/message.readonly` scope; without it 401).
   */
  reads: { altId: boolean; scope: boolean };
  /** The marketplace app HighLevel knows, and how long the access tokens it grants live. */
  oauth: { clientId: string; clientSecret: string; accessTtlMs: number };
  /** Every location's "Allow Duplicate Contact" rule, unless `duplicatesPerLocation` says otherwise. */
  duplicates: DuplicateRule;
  /** The rule of particular locations, over `duplicates`. */
  duplicatesPerLocation: Record<string, Partial<DuplicateRule>>;
  /** Phone numbers (E.164) an upsert refuses with 422, as HighLevel refuses some numbers. Default none. */
  rejectPhones: string[];
  /**
   * How long, in ms, a new conversation stays invisible to `GET /conversations/search` (HighLevel's
   * issue #5: search lags a create). Default 0.
   */
  searchLagMs: number;
  /** Files per upload request. HighLevel: 5. */
  uploadMaxFiles: number;
  /** Bytes per uploaded file. HighLevel: 5 MB (5,242,880) for most channels. */
  uploadMaxBytes: number;
  /** How long, in ms, an uploaded file's URL serves it. HighLevel's secure attachments: about an hour. */
  uploadTtlMs: number;
  /** File extensions an upload takes, lower case. HighLevel: jpg jpeg png mp4 mpeg zip rar pdf doc docx txt mp3 wav. */
  uploadTypes: string[];
  /**
   * The routes `faults` and `outage` strike. Default every write: `inbound`, `upsert`,
   * `conversation`, `upload`; add `read` for the reads (message pages, search).
   */
  faultRoutes: FaultRoute[];
}

/** A route as faults tell them apart. */
export type FaultRoute = 'inbound' | 'upsert' | 'conversation' | 'upload' | 'read';
export const FAULT_ROUTES: readonly FaultRoute[] = ['inbound', 'upsert', 'conversation', 'upload', 'read'];

export const DEFAULT_CONFIG: FakeHighLevelConfig = {
  tokens: null,
  limits: { max: 100, windowMs: 10_000, daily: 200_000, mode: 'rolling' },
  perLocation: {},
  faults: { status500: 0, status502: 0, status503: 0, drop: 0, dropAfterAccept: 0, empty201: 0, slowAfterAccept: 0, slowAfterAcceptMs: 0 },
  latency: { minMs: 0, maxMs: 0, slowProbability: 0, slowMs: 0 },
  retryAfter: false,
  providers: null,
  recordBodies: true,
  maxMessageChars: null,
  reads: { altId: true, scope: true },
  oauth: { clientId: 'stand-in-client', clientSecret: 'stand-in-secret', accessTtlMs: 86_399_000 },
  duplicates: { contactMatch: ['email', 'phone'], allowDuplicates: false },
  duplicatesPerLocation: {},
  rejectPhones: [],
  searchLagMs: 0,
  uploadMaxFiles: 5,
  uploadMaxBytes: 5 * 1024 * 1024,
  uploadTtlMs: 3_600_000,
  uploadTypes: ['jpg', 'jpeg', 'png', 'mp4', 'mpeg', 'zip', 'rar', 'pdf', 'doc', 'docx', 'txt', 'mp3', 'wav'],
  faultRoutes: ['inbound', 'upsert', 'conversation', 'upload'],
};

export type ConfigPatch = {
  tokens?: Record<string, string | null> | null;
  limits?: Partial<RateLimits>;
  perLocation?: Record<string, Partial<RateLimits> | null>;
  faults?: Partial<Faults>;
  latency?: Partial<Latency>;
  retryAfter?: boolean;
  providers?: string[] | null;
  recordBodies?: boolean;
  maxMessageChars?: number | null;
  oauth?: Partial<FakeHighLevelConfig['oauth']>;
  reads?: Partial<FakeHighLevelConfig['reads']>;
  duplicates?: Partial<DuplicateRule>;
  /** `null` for a location drops its own rule. */
  duplicatesPerLocation?: Record<string, Partial<DuplicateRule> | null>;
  rejectPhones?: string[];
  searchLagMs?: number;
  uploadMaxFiles?: number;
  uploadMaxBytes?: number;
  uploadTtlMs?: number;
  uploadTypes?: string[];
  faultRoutes?: FaultRoute[];
};

/** Applies a patch: objects merge, `null` in a token or location map removes that entry. */
export function applyPatch(config: FakeHighLevelConfig, patch: ConfigPatch): FakeHighLevelConfig {
  const next: FakeHighLevelConfig = structuredClone(config);
  if (patch.tokens === null) next.tokens = null;
  else if (patch.tokens !== undefined) {
    const merged = { ...(next.tokens ?? {}), ...patch.tokens };
    next.tokens = Object.fromEntries(Object.entries(merged).filter((entry): entry is [string, string] => entry[1] !== null));
  }
  if (patch.limits !== undefined) next.limits = { ...next.limits, ...patch.limits };
  if (patch.perLocation !== undefined) next.perLocation = mergePerLocation(next.perLocation, patch.perLocation);
  if (patch.faults !== undefined) next.faults = { ...next.faults, ...patch.faults };
  if (patch.latency !== undefined) next.latency = { ...next.latency, ...patch.latency };
  if (patch.retryAfter !== undefined) next.retryAfter = patch.retryAfter;
  if (patch.providers !== undefined) next.providers = patch.providers;
  if (patch.recordBodies !== undefined) next.recordBodies = patch.recordBodies;
  if (patch.maxMessageChars !== undefined) next.maxMessageChars = patch.maxMessageChars;
  if (patch.oauth !== undefined) next.oauth = { ...next.oauth, ...patch.oauth };
  if (patch.reads !== undefined) next.reads = { ...next.reads, ...patch.reads };
  if (patch.duplicates !== undefined) next.duplicates = { ...next.duplicates, ...patch.duplicates };
  if (patch.duplicatesPerLocation !== undefined) next.duplicatesPerLocation = mergePerLocation(next.duplicatesPerLocation, patch.duplicatesPerLocation);
  if (patch.rejectPhones !== undefined) next.rejectPhones = [...patch.rejectPhones];
  if (patch.uploadTypes !== undefined) next.uploadTypes = [...patch.uploadTypes];
  if (patch.faultRoutes !== undefined) next.faultRoutes = [...patch.faultRoutes];
  for (const key of ['searchLagMs', 'uploadMaxFiles', 'uploadMaxBytes', 'uploadTtlMs'] as const) {
    const value = patch[key];
    if (value !== undefined) next[key] = value;
  }
  return next;
}

/** Per-location overrides merged field by field; `null` removes a location's entry. */
function mergePerLocation<T extends object>(current: Record<string, Partial<T>>, patch: Record<string, Partial<T> | null>): Record<string, Partial<T>> {
  const merged: Record<string, Partial<T> | null> = { ...current };
  for (const [location, value] of Object.entries(patch)) merged[location] = value === null ? null : { ...current[location], ...value };
  return Object.fromEntries(Object.entries(merged).filter((entry): entry is [string, Partial<T>] => entry[1] !== null));
}
