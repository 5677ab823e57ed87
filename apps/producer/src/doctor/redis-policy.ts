/**
 * The doctor's policy for Redis, the clocks and the API: facts in, findings out, each with a
 * one-line fix. Pure; the README's "doctor" section states the same severities.
 */
import { REPLAY_WINDOW_MS } from '../webhook-replay.ts';
import { worse, type ApiFacts, type ClockSample, type Finding, type NodeFacts, type Probe, type RedisMode, type RedisReach, type Severity } from './facts.ts';

/** How a setting is made to last: `it` or `them`. */
function lasting(it: 'it' | 'them'): string {
  return `and put ${it} in redis.conf (or run CONFIG REWRITE; on a managed service, set ${it} in its parameter group)`;
}

/** Reachable, mode, version, eviction, memory, persistence, and what the ACL allows. */
export function redisFindings(reach: RedisReach): Finding[] {
  if (!reach.reachable) {
    return [{ check: 'redis.reachable', status: 'blocker', detail: reach.why, fix: `start Redis there, or set ${reach.setting} to where it runs` }];
  }
  const { facts } = reach;
  return [
    { check: 'redis.reachable', status: 'ok', detail: reach.where },
    judgeMode(facts.mode, facts.masters.length),
    perMaster('redis.version', facts.masters, judgeNodeVersion),
    perMaster('redis.maxmemory-policy', facts.masters, judgeNodeEviction),
    perMaster('redis.maxmemory', facts.masters, judgeNodeMemory),
    perMaster('redis.persistence', facts.masters, judgeNodePersistence),
    judgeProbe(
      'redis.lua',
      facts.lua,
      'Lua scripts (EVAL, EVALSHA)',
      'BullMQ and our budget, ready set and OAuth refresh are scripts: nothing is queued or delivered without them',
      'allow EVAL and EVALSHA for this user (ACL SETUSER <user> +@scripting), or use a Redis that runs scripts',
    ),
    judgeProbe(
      'redis.pubsub',
      facts.pubsub,
      'pub/sub (SUBSCRIBE, PUBLISH)',
      'producers publish wake-ups from a script (refused, no message is enqueued) and workers subscribe at start (refused, they do not start)',
      'allow pub/sub for this user on channels under QUEUE_PREFIX (ACL SETUSER <user> +@pubsub &<QUEUE_PREFIX>*)',
    ),
    judgeProbe(
      'redis.client-name',
      facts.clientName,
      'CLIENT SETNAME',
      'every connection names itself, so CLIENT LIST tells workers, producers and leaks apart',
      'allow CLIENT SETNAME for this user (ACL SETUSER <user> +client|setname)',
      'warning',
    ),
  ];
}

export function judgeMode(mode: RedisMode, masters: number): Finding {
  if (mode.kind === 'cluster') {
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
    if (!mode.replicas.known) {
      return { check: 'redis.mode', status: 'ok', detail: `Redis Cluster: ${plural(masters, 'master')}; replicas not counted (${mode.replicas.why})` };
    }
    const detail = `Redis Cluster: ${plural(masters, 'master')}, ${plural(mode.replicas.value, 'replica')}`;
    if (mode.replicas.value === 0) {
      return {
        check: 'redis.mode',
        status: 'warning',
        detail: `${detail}: a master lost takes its locations down (and what it held with it) until it is back`,
        fix: 'give each master a replica (redis-cli --cluster add-node --cluster-slave)',
      };
    }
    return { check: 'redis.mode', status: 'ok', detail };
  }
  if (!mode.role.known)
    return {
      check: 'redis.mode',
      status: 'warning',
      detail: `one Redis; its role could not be read (${mode.role.why})`,
      fix: 'check it yourself: INFO replication',
    };
  const { role, replicas } = mode.role.value;
  if (role !== 'master') {
    return {
      check: 'redis.mode',
      status: 'blocker',
      detail: `REDIS_URL points at a ${role === 'slave' ? 'replica' : role}: it refuses writes (READONLY)`,
      fix: 'point REDIS_URL at the master (or REDIS_CLUSTER_NODES at the cluster)',
    };
  }
  return {
    check: 'redis.mode',
    status: 'ok',
    detail: `one Redis (master, ${replicas === 0 ? 'no replicas' : `${replicas} replica${replicas === 1 ? '' : 's'}`})`,
  };
}

/** What one master's facts say on one check. */
interface Verdict {
  status: Severity;
  detail: string;
  fix?: string | undefined;
}

/**
 * Per-master verdicts as one finding: as bad as the worst master, naming the masters that are
 * that bad (all of them when all is well), those that say the same thing said once.
 */
export function perMaster(check: string, masters: readonly NodeFacts[], judge: (m: NodeFacts) => Verdict): Finding {
  const judged = masters.map((m) => ({ node: m.node, ...judge(m) }));
  const status = judged.reduce<Severity>((s, j) => worse(s, j.status), 'ok');
  const shown = judged.filter((j) => j.status === status);
  const groups = new Map<string, string[]>();
  for (const j of shown) groups.set(j.detail, [...(groups.get(j.detail) ?? []), j.node]);
  const detail = [...groups]
    .map(([text, nodes]) =>
      masters.length === 1 ? text : nodes.length === masters.length ? `${text} (all ${masters.length} masters)` : `${nodes.join(', ')}: ${text}`,
    )
    .join('; ');
  const fix = shown.find((j) => j.fix !== undefined)?.fix;
  return { check, status, detail: detail === '' ? 'no master' : detail, ...(fix === undefined ? {} : { fix }) };
}

const UPGRADE = 'upgrade Redis to 7 or later';

/** BullMQ 6 refuses Redis below 5.0.0 and recommends 6.2.0; our scripts call ZRANGE ... BYSCORE (6.2); the product is tested on 7. */
export function judgeNodeVersion(m: NodeFacts): Verdict {
  if (!m.version.known) return { status: 'warning', detail: `the version could not be read (${m.version.why})`, fix: 'check it yourself: INFO server' };
  const text = m.version.value;
  const v = parseVersion(text);
  if (v === undefined) return { status: 'warning', detail: `Redis says its version is "${text}"`, fix: 'check it yourself: Redis 7 or later' };
  if (below(v, [6, 2])) return { status: 'blocker', detail: `Redis ${text}: BullMQ 6 needs 6.2 or later (our scripts call ZRANGE ... BYSCORE)`, fix: UPGRADE };
  if (below(v, [7, 0])) return { status: 'warning', detail: `Redis ${text}: ghl-ingest is built and tested on Redis 7`, fix: UPGRADE };
  return { status: 'ok', detail: `Redis ${text}` };
}

export function judgeNodeEviction(m: NodeFacts): Verdict {
  if (!m.maxmemoryPolicy.known) {
    return {
      status: 'warning',
      detail: `could not read it (${m.maxmemoryPolicy.why})`,
      fix: 'check it yourself: it must be noeviction (INFO memory, or your provider’s parameter group)',
    };
  }
  const policy = m.maxmemoryPolicy.value;
  if (policy === 'noeviction') return { status: 'ok', detail: 'noeviction' };
  return {
    status: 'blocker',
    detail: `${policy}: when full, Redis evicts keys, and queued messages, ledger entries and leases vanish without a trace (BullMQ requires noeviction)`,
    fix: `run CONFIG SET maxmemory-policy noeviction ${lasting('it')}`,
  };
}

/** Share of maxmemory in use past which there is little room for an import. */
const MEMORY_WARN_SHARE = 0.8;

export function judgeNodeMemory(m: NodeFacts): Verdict {
  const fix = `set maxmemory to what the host can give Redis (about 1 KB per pending message) ${lasting('it')}`;
  if (!m.memory.known) return { status: 'warning', detail: `could not read it (${m.memory.why})`, fix: 'check it yourself: INFO memory' };
  const { maxmemory, used } = m.memory.value;
  if (maxmemory === 0) return { status: 'warning', detail: 'no maxmemory: Redis grows until the host runs out, and then the OS kills it', fix };
  const share = used / maxmemory;
  if (share > MEMORY_WARN_SHARE) {
    return {
      status: 'warning',
      detail: `${mb(used)} of ${mb(maxmemory)} used (${Math.round(100 * share)} %): an import of N messages needs about N KB more`,
      fix,
    };
  }
  return { status: 'ok', detail: `${mb(used)} of ${mb(maxmemory)} used` };
}

const PERSISTENCE_FIX = `run CONFIG SET appendonly yes and CONFIG SET appendfsync everysec, ${lasting('them')}`;

/** One master's persistence: AOF with fsync everysec or always is ok; RDB only warns; nothing on disk blocks. */
export function judgeNodePersistence(m: NodeFacts): Verdict {
  if (!m.aofEnabled.known) {
    return {
      status: 'warning',
      detail: `could not read it (${m.aofEnabled.why}): check it yourself`,
      fix: 'INFO persistence must say aof_enabled:1 (or your provider’s persistence must be on)',
    };
  }
  if (m.aofEnabled.value) {
    if (!m.appendfsync.known) {
      return {
        status: 'warning',
        detail: `AOF on, but appendfsync could not be read (${m.appendfsync.why}): check it yourself`,
        fix: 'appendfsync must be everysec or always (your provider’s parameter group)',
      };
    }
    const fsync = m.appendfsync.value;
    if (fsync === 'always') return { status: 'ok', detail: 'AOF, fsync always' };
    if (fsync === 'everysec') return { status: 'ok', detail: 'AOF, fsync every second (a crash of the host can lose the last second)' };
    return {
      status: 'warning',
      detail: `AOF with appendfsync ${fsync}: the OS writes it when it likes, so a crash of the host can lose about 30 s of accepted messages`,
      fix: `run CONFIG SET appendfsync everysec ${lasting('it')}`,
    };
  }
  if (!m.savePoints.known) {
    return {
      status: 'warning',
      detail: `AOF off, and the RDB save points could not be read (${m.savePoints.why}): if no snapshots are taken either, a restart loses every queued message`,
      fix: 'check it yourself, and turn AOF on (appendonly yes, appendfsync everysec, or your provider’s persistence setting)',
    };
  }
  if (m.savePoints.value.trim() === '') {
    return {
      status: 'blocker',
      detail: 'nothing on disk (appendonly no, no save points): a restart of Redis loses every accepted message',
      fix: PERSISTENCE_FIX,
    };
  }
  return {
    status: 'warning',
    detail: `RDB snapshots only (save ${m.savePoints.value}): a restart loses what was written since the last snapshot: accepted messages, and ledger entries (a message delivered in that time may be posted again)`,
    fix: PERSISTENCE_FIX,
  };
}

export function judgeProbe(check: string, probe: Probe, what: string, why: string, fix: string, denied: Severity = 'blocker'): Finding {
  if (probe.allowed) return { check, status: 'ok', detail: `${what} allowed` };
  return { check, status: denied, detail: `${what} did not work (${probe.why}): ${why}`, fix };
}

// --- clock ---------------------------------------------------------------------------------------

/** Offsets up to this are ok. */
const CLOCK_OK_MS = 1_000;

/**
 * How far apart clocks may drift before it blocks: past HighLevel's webhook window, every install
 * and uninstall event would be refused as a replay. Below it, an offset still misjudges OAuth
 * expiries (a token is refreshed up to 30 s before its end) and the ages `status` shows.
 */
const CLOCK_BLOCK_MS = REPLAY_WINDOW_MS;

/**
 * One sample's verdict, judged by the least the offset can be given the round trip. Against
 * Redis (the clock every host shares), an offset stands for hosts disagreeing with each other and,
 * Redis's host being kept right, with HighLevel; against HighLevel's Date header, directly.
 */
export function judgeClock(sample: ClockSample, against: 'redis' | 'highlevel', versus: string): { status: Severity; detail: string } {
  const least = Math.max(0, Math.abs(sample.offsetMs) - sample.uncertaintyMs);
  const measured = `${sample.offsetMs <= -0.05 ? '-' : '+'}${seconds(Math.abs(sample.offsetMs))} ± ${seconds(sample.uncertaintyMs)}`;
  const said = `${versus} is ${measured} from this host's`;
  if (least > CLOCK_BLOCK_MS) {
    return {
      status: 'blocker',
      detail:
        against === 'highlevel'
          ? `${said}: past the 5-minute window, every HighLevel webhook this host takes is refused as a replay`
          : `${said}: one of them is more than 5 minutes off; if it is this host's, every HighLevel webhook it takes is refused as a replay`,
    };
  }
  if (least > CLOCK_OK_MS) {
    return { status: 'warning', detail: `${said}: hosts that disagree misjudge OAuth expiries (refreshed at most 30 s ahead) and the ages status shows` };
  }
  if (sample.uncertaintyMs > CLOCK_OK_MS)
    return { status: 'warning', detail: `${versus}: the round trip is too slow to measure the offset closer than ${measured}` };
  return { status: 'ok', detail: said };
}

const CLOCK_FIX = "keep this host's clock and Redis's host's in sync with NTP (timedatectl set-ntp true, or chrony)";

/** Redis's clock (each master's) and, with `--api`, HighLevel's, against this host's. */
export function clockFindings(reach: RedisReach, api: ApiFacts): Finding[] {
  const findings: Finding[] = [];
  if (reach.reachable) {
    const masters = reach.facts.masters;
    const finding = perMaster('clock.redis', masters, (m) => {
      if (!m.clock.known) return { status: 'warning', detail: `TIME could not be read (${m.clock.why})`, fix: 'check it yourself: TIME against date +%s.%N' };
      const v = judgeClock(m.clock.value, 'redis', reach.facts.masters.length > 1 ? "the master's clock" : "Redis's clock");
      return { ...v, ...(v.status === 'ok' ? {} : { fix: CLOCK_FIX }) };
    });
    if (finding.status === 'ok' && masters.length > 1) {
      const farthest = Math.max(...masters.map((m) => (m.clock.known ? Math.abs(m.clock.value.offsetMs) + m.clock.value.uncertaintyMs : 0)));
      finding.detail = `every master's clock is within ${seconds(farthest)} of this host's`;
    }
    findings.push(finding);
  }
  if (api.asked && api.answer.answered && api.answer.clock !== undefined) {
    const j = judgeClock(api.answer.clock, 'highlevel', "HighLevel's clock (its Date header)");
    findings.push({
      check: 'clock.highlevel',
      ...j,
      ...(j.status === 'ok' ? {} : { fix: "keep this host's clock in sync with NTP (timedatectl set-ntp true, or chrony)" }),
    });
  }
  return findings;
}

// --- the API -------------------------------------------------------------------------------------

/** `--api`: whether HighLevel answered. */
export function apiFindings(api: ApiFacts): Finding[] {
  if (!api.asked) return [];
  const a = api.answer;
  if (!a.answered) {
    return [
      {
        check: 'api.reachable',
        status: 'blocker',
        detail: `${api.url} did not answer (${a.why}): workers cannot deliver`,
        fix: 'check GHL_API_BASE_URL, DNS, the proxy and the firewall from this host',
      },
    ];
  }
  if (a.status >= 500) {
    return [
      {
        check: 'api.reachable',
        status: 'warning',
        detail: `${api.url} answered ${a.status} in ${a.ms} ms: HighLevel may be having trouble`,
        fix: 'try again later; workers wait out 5xx answers',
      },
    ];
  }
  return [
    { check: 'api.reachable', status: 'ok', detail: `${api.url} answered ${a.status} in ${a.ms} ms (a request without a token: no location's budget spent)` },
  ];
}

// --- helpers -------------------------------------------------------------------------------------

function parseVersion(text: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim());
  return m === null ? undefined : [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

function below(v: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i += 1) {
    const a = v[i] ?? 0;
    const b = min[i] ?? 0;
    if (a !== b) return a < b;
  }
  return false;
}

function mb(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(bytes < 10 * 1_048_576 ? 1 : 0)} MB`;
}

function seconds(ms: number): string {
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return ms < 1_000 ? `${Math.round(ms)} ms` : `${(ms / 1_000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}
