/**
 * The doctor's facts, gathered: from Redis (INFO, CONFIG GET, TIME, a trivial script, a pub/sub
 * round trip, CLIENT SETNAME; on a cluster, from every master), the settings, GHL_TOKENS_FILE (its
 * location ids only), the OAuth store (records without their secrets) and, with `--api`, one
 * request to HighLevel without a token. A read the server refuses (CONFIG renamed by a managed
 * service, a command an ACL denies) becomes an unknown fact, never a crash. Writes nothing to Redis.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, ReplyError, type Redis } from 'ioredis';
import {
  coerceError,
  ConfigError,
  createRedis,
  isIngestError,
  knownPrimaries,
  LocationReader,
  openOAuthStore,
  readTokensFile,
  TokenCipher,
  whenReady,
  type Config,
  type RedisClient,
} from '@ghl-ingest/queue';
import { connectProducer, redactUrl } from '../connect.ts';
import type { ApiFacts, ClockSample, DoctorFacts, NodeFacts, OAuthFacts, Probe, Read, RedisFacts, RedisReach, TokenFacts, TokensFile } from './facts.ts';

export interface GatherOptions {
  /** Also ask HighLevel (GHL_API_BASE_URL) for an answer. */
  api: boolean;
}

/** Everything the doctor judges, for these settings. */
export async function gatherFacts(config: Config, options: GatherOptions): Promise<DoctorFacts> {
  const where =
    config.redisClusterNodes === undefined
      ? `Redis at ${redactUrl(config.redisUrl)}`
      : `the Redis Cluster at ${config.redisClusterNodes.map(redactUrl).join(', ')}`;
  const file = tokensFileFacts(config.tokensFile);
  const api: ApiFacts = options.api ? await probeApi(config.apiBaseUrl, Math.min(config.httpTimeoutMs, API_TIMEOUT_MS)) : { asked: false };
  const key = tokenKeyFault(config);
  let redis: RedisClient;
  try {
    redis = await connectProducer(config, 'doctor');
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const unreachable: RedisReach = {
      reachable: false,
      where,
      why: error.message,
      setting: config.redisClusterNodes === undefined ? 'REDIS_URL' : 'REDIS_CLUSTER_NODES',
    };
    const oauth: OAuthFacts = config.oauth === undefined ? { kind: 'off' } : key === undefined ? { kind: 'unread' } : { kind: 'bad-key', why: key };
    return { redis: unreachable, tokens: tokenFacts(config, file, undefined, oauth), api, now: Date.now() };
  }
  try {
    const facts = await redisFacts(redis, config);
    const known = await attempt(() => new LocationReader(redis, { prefix: config.queuePrefix }).known());
    const oauth = await oauthFacts(redis, config, key);
    return { redis: { reachable: true, where, facts }, tokens: tokenFacts(config, file, known, oauth), api, now: Date.now() };
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

function tokenFacts(config: Config, file: TokensFile, known: Read<readonly string[]> | undefined, oauth: OAuthFacts): TokenFacts {
  return { known, file, fallback: config.token !== undefined && config.token.trim() !== '', oauth, reconcile: config.reconcile };
}

// --- Redis ---------------------------------------------------------------------------------------

async function redisFacts(redis: RedisClient, config: Config): Promise<RedisFacts> {
  const masters = await knownPrimaries(redis);
  const nodes = await Promise.all(masters.map((node) => nodeFacts(node)));
  const first = nodes[0];
  const mode: RedisFacts['mode'] =
    redis instanceof Cluster ? { kind: 'cluster', replicas: await replicaCount(masters) } : { kind: 'single', role: first?.replication ?? unknown('no node') };
  return {
    mode,
    masters: nodes.map((n) => n.facts),
    lua: await luaProbe(redis, `${config.queuePrefix}:doctor`),
    pubsub: await pubsubProbe(redis, config),
    clientName: await probe(() => redis.client('SETNAME', `${config.queuePrefix}:doctor`)),
  };
}

async function nodeFacts(node: Redis): Promise<{ facts: NodeFacts; replication: Read<{ role: string; replicas: number }> }> {
  const info = await attempt(() => node.info());
  const field = <T>(name: string, as: (v: string) => T): Read<T> => {
    if (!info.known) return info;
    const v = infoField(info.value, name);
    return v === undefined ? unknown(`INFO has no ${name}`) : { known: true, value: as(v) };
  };
  const config = async (parameter: string): Promise<Read<string>> => {
    const r = await attempt(async () => (await node.config('GET', parameter)) as string[]);
    if (!r.known) return { known: false, why: `CONFIG GET refused: ${r.why}` };
    const value = r.value[1];
    return value === undefined ? unknown(`CONFIG GET ${parameter} gave nothing`) : { known: true, value };
  };
  let maxmemoryPolicy = field('maxmemory_policy', (v) => v);
  if (!maxmemoryPolicy.known) {
    const fromConfig = await config('maxmemory-policy');
    if (fromConfig.known) maxmemoryPolicy = fromConfig;
  }
  const maxmemory = field('maxmemory', Number);
  const used = field('used_memory', Number);
  const role = field('role', (v) => v);
  const replicas = field('connected_slaves', Number);
  const facts: NodeFacts = {
    node: `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`,
    version: field('redis_version', (v) => v),
    maxmemoryPolicy,
    memory: !maxmemory.known ? maxmemory : !used.known ? used : { known: true, value: { maxmemory: maxmemory.value, used: used.value } },
    aofEnabled: field('aof_enabled', (v) => v === '1'),
    appendfsync: await config('appendfsync'),
    savePoints: await config('save'),
    clock: await attempt(() => clockOf(node)),
  };
  return { facts, replication: role.known ? { known: true, value: { role: role.value, replicas: replicas.known ? replicas.value : 0 } } : role };
}

/** The cluster's replicas, as a master sees them (the client itself connects to masters only). */
async function replicaCount(masters: readonly Redis[]): Promise<Read<number>> {
  const first = masters[0];
  if (first === undefined) return unknown('no master');
  const nodes = await attempt(async () => String(await first.cluster('NODES')));
  if (!nodes.known) return nodes;
  // A line per node: `<id> <address> <flags> ...`, flags such as `myself,master` or `slave`.
  const replicas = nodes.value.split('\n').filter((line) => /^\S+ \S+ (\S+,)?(slave|replica)(,\S+)? /.test(line));
  return { known: true, value: replicas.length };
}

/** Samples of Redis's TIME: the one with the shortest round trip bounds the offset best. */
const CLOCK_SAMPLES = 5;

/** Redis's clock against this host's: TIME read between two readings of ours. */
async function clockOf(node: Redis): Promise<ClockSample> {
  let best: ClockSample | undefined;
  for (let i = 0; i < CLOCK_SAMPLES; i += 1) {
    const before = wallClock();
    const [s, us] = (await node.time()) as [number | string, number | string];
    const after = wallClock();
    const redisMs = Number(s) * 1000 + Number(us) / 1000;
    const sample = { offsetMs: redisMs - (before + after) / 2, uncertaintyMs: (after - before) / 2 };
    if (best === undefined || sample.uncertaintyMs < best.uncertaintyMs) best = sample;
  }
  if (best === undefined) throw new Error('no clock sample');
  return best;
}

/** This host's wall clock, sub-millisecond (the process is young: it has not drifted from the wall clock since it started). */
function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

const PROBE_SCRIPT = "return redis.call('EXISTS', KEYS[1])";

/** EVAL, then EVALSHA (ioredis and BullMQ send EVALSHA first), on a key under QUEUE_PREFIX that nothing writes. */
async function luaProbe(redis: RedisClient, key: string): Promise<Probe> {
  return probe(async () => {
    await redis.eval(PROBE_SCRIPT, 1, key);
    await redis.evalsha(createHash('sha1').update(PROBE_SCRIPT).digest('hex'), 1, key);
  });
}

/** How long a message published may take to come back. */
const PUBSUB_WAIT_MS = 3_000;

/** A message published on a channel of our own under QUEUE_PREFIX (where the wake channel is) must reach a subscriber. */
async function pubsubProbe(redis: RedisClient, config: Config): Promise<Probe> {
  const channel = `${config.queuePrefix}:doctor:${randomBytes(6).toString('hex')}`;
  const subscriber = createRedis(config, 'producer', `${config.queuePrefix}:doctor-subscriber`);
  subscriber.on('error', () => undefined);
  try {
    return await probe(async () => {
      await whenReady(subscriber, 5_000);
      const arrived = new Promise<true>((resolve) => subscriber.on('message', (on: string) => on === channel && resolve(true)));
      await subscriber.subscribe(channel);
      await redis.publish(channel, 'doctor');
      if (!(await Promise.race([arrived, sleep(PUBSUB_WAIT_MS, false, { ref: false })]))) {
        throw new Error(`a message published did not arrive within ${PUBSUB_WAIT_MS / 1000} s`);
      }
    });
  } finally {
    await subscriber.quit().catch(() => subscriber.disconnect());
  }
}

/** Runs a command our processes need: refused (a reply error, an ACL's NOPERM) or failed, it says why. */
async function probe(fn: () => Promise<unknown>): Promise<Probe> {
  try {
    await fn();
    return { allowed: true };
  } catch (error) {
    return { allowed: false, why: short(coerceError(error).message) };
  }
}

/** A read: a reply error (a refused or renamed command) makes the fact unknown; anything else (Redis gone) is thrown. */
async function attempt<T>(fn: () => Promise<T>): Promise<Read<T>> {
  try {
    return { known: true, value: await fn() };
  } catch (error) {
    if (error instanceof ReplyError) return unknown(short(coerceError(error).message));
    throw error;
  }
}

function unknown(why: string): { known: false; why: string } {
  return { known: false, why };
}

function short(text: string): string {
  const line = text.split('\n')[0] ?? '';
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

function infoField(text: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*?)\\r?$`, 'm').exec(text)?.[1];
}

// --- tokens --------------------------------------------------------------------------------------

/** GHL_TOKENS_FILE as the worker reads it (`readTokensFile` owns the format): its location ids only, or why it is bad. */
export function tokensFileFacts(path: string | undefined): TokensFile {
  if (path === undefined) return { kind: 'unset' };
  try {
    return { kind: 'read', path, locations: new Set(readTokensFile(path).keys()) };
  } catch (error) {
    if (isIngestError(error) && error.code === 'CONFIG') return { kind: 'bad', path, why: error.message };
    throw error;
  }
}

/** What is wrong with GHL_TOKEN_KEY, if anything (checked without Redis). */
function tokenKeyFault(config: Config): string | undefined {
  if (config.oauth === undefined) return undefined;
  try {
    TokenCipher.fromSetting(config.oauth.tokenKey);
    return undefined;
  } catch (error) {
    if (isIngestError(error) && error.code === 'CONFIG') return error.message;
    throw error;
  }
}

async function oauthFacts(redis: RedisClient, config: Config, keyFault: string | undefined): Promise<OAuthFacts> {
  if (config.oauth === undefined) return { kind: 'off' };
  if (keyFault !== undefined) return { kind: 'bad-key', why: keyFault };
  const store = openOAuthStore(redis, config);
  if (store === undefined) return { kind: 'off' };
  const records = await attempt(() => store.list());
  if (!records.known) return { kind: 'unread' };
  return { kind: 'read', refreshes: config.oauth.clientId !== undefined && config.oauth.clientSecret !== undefined, records: records.value };
}

// --- the API -------------------------------------------------------------------------------------

/** The longest `--api` waits for HighLevel. */
const API_TIMEOUT_MS = 10_000;

/**
 * One GET of GHL_API_BASE_URL itself, without a token: it spends no location's budget (HighLevel
 * counts requests per app and location, and this one names neither). Any HTTP answer proves DNS,
 * TLS and the route; its Date header gives HighLevel's clock to the second.
 */
async function probeApi(baseUrl: string, timeoutMs: number): Promise<ApiFacts> {
  const before = wallClock();
  try {
    const res = await fetch(baseUrl, { redirect: 'manual', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
    const after = wallClock();
    await res.body?.cancel();
    const date = Date.parse(res.headers.get('date') ?? '');
    // The header is truncated to the second: HighLevel's time was within [date, date + 1 s).
    const clock = Number.isFinite(date) ? { offsetMs: date + 500 - (before + after) / 2, uncertaintyMs: (after - before) / 2 + 500 } : undefined;
    return { asked: true, url: baseUrl, answer: { answered: true, status: res.status, ms: Math.round(after - before), clock } };
  } catch (error) {
    const e = coerceError(error);
    const code = (e.cause as { code?: unknown } | undefined)?.code;
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : typeof code === 'string' ? code : e.message;
    return { asked: true, url: baseUrl, answer: { answered: false, why } };
  }
}
