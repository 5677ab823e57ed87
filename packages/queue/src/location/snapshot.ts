/**
 * What `status` and metrics show of many locations at once: one pipelined round trip per 500 of
 * them. Owns the snapshot's shape (LocationSnapshot) and how its reads are put together, not the
 * keys it reads: each field is read and parsed by the module that owns its keys (the queue counts
 * by `queues.ts`, outcomes by `outcomes.ts`, the hold by `holds.ts`, the place by `ready-set.ts`),
 * and the budget fields by `readBudgetFields`/`parseBudgetFields` below, kept apart.
 *
 * Each field queues its own commands and parses exactly the replies to them (their positions are
 * recorded as they are queued), so adding a field shifts no other.
 */
import type { ChainableCommander } from 'ioredis';
import { mixesSlots, type RedisClient } from '../connection.ts';
import { dayIndex, type Budget } from '../rate-budget.ts';
import { parseBudget, readBudget } from './budget.ts';
import type { LocationHold } from './holds.ts';
import type { Holds } from './holds.ts';
import type { LocationOutcomes, LookupCount } from './outcomes.ts';
import { parseQueueCounts, readQueueCounts } from './queues.ts';
import type { ReadySet } from './ready-set.ts';
import { redisNow } from './redis-time.ts';

export interface LocationSnapshot {
  locationId: string;
  /** BullMQ's counts: waiting (incl. paused and prioritized), active, delayed (retries), failed. */
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
  paused: boolean;
  hold: LocationHold | undefined;
  delivered: number;
  skipped: number;
  dead: number;
  /** Lookups before posting again after an unknown outcome, by result. */
  lookups: Record<LookupCount, number>;
  /** Contacts named by phone or email that HighLevel found, or created. */
  contacts: { found: number; created: number };
  /** Files uploaded. */
  uploads: number;
  /** Requests counted in the current window (answered and in flight). */
  sentInWindow: number;
  /** The budget after what HighLevel's headers taught. */
  budget: Budget;
  dailyUsed: number;
  /** A 429's or an outage's wait: epoch ms, 0 if none. */
  blockedUntil: number;
  /** Its place in the ready set: epoch ms when it may be taken (a lease's end while held), undefined if it has no work. */
  dueAt: number | undefined;
  held: boolean;
}

/** What a snapshot reads at one moment: Redis's time, and the day the daily budget counts. */
export interface SnapshotTime {
  now: number;
  /** The day index (see rate-budget.ts `dayIndex`), as the daily hash's field names it. */
  day: string;
}

// --- the budget fields: the budget module's reader --------------------------------------------

/** The budget fields of a snapshot. */
export type BudgetFields = Pick<LocationSnapshot, 'sentInWindow' | 'budget' | 'dailyUsed' | 'blockedUntil'>;

/** Queues the reads of a location's budget fields on `p` (the location's slot): its log as last saved, and the day's count. */
export function readBudgetFields(p: ChainableCommander, prefix: string, locationId: string, { day }: SnapshotTime): void {
  readBudget(p, prefix, locationId, Number(day));
}

/** Reads the replies of `readBudgetFields`; `base`: the budget before learning (settings and overrides). */
export function parseBudgetFields(replies: readonly unknown[], base: Budget, { now }: SnapshotTime): BudgetFields {
  return parseBudget(replies, now, base);
}

// --- putting the fields together ------------------------------------------------------------------

/** One field of a snapshot: the commands it queues for a location, and how it reads exactly their replies. */
interface Field<T> {
  read(p: ChainableCommander, locationId: string): void;
  parse(replies: readonly unknown[], locationId: string): T;
}

/** Where each field's replies are, in the pipeline they were queued on. */
type Spans<F> = { [K in keyof F]: [start: number, end: number] };
type Parsed<F> = { [K in keyof F]: F[K] extends Field<infer T> ? T : never };

function queueFields<F extends Record<string, Field<unknown>>>(p: ChainableCommander, locationId: string, fields: F): Spans<F> {
  const spans = {} as Spans<F>;
  for (const name of Object.keys(fields) as (keyof F)[]) {
    const start = p.length;
    (fields[name] as Field<unknown>).read(p, locationId);
    spans[name] = [start, p.length];
  }
  return spans;
}

function parseFields<F extends Record<string, Field<unknown>>>(replies: readonly unknown[], spans: Spans<F>, locationId: string, fields: F): Parsed<F> {
  const out = {} as Record<keyof F, unknown>;
  for (const name of Object.keys(fields) as (keyof F)[]) {
    const [start, end] = spans[name];
    out[name] = (fields[name] as Field<unknown>).parse(replies.slice(start, end), locationId);
  }
  return out as Parsed<F>;
}

function values(results: [Error | null, unknown][] | null): unknown[] {
  return (results ?? []).map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}

export interface SnapshotSources {
  redis: RedisClient;
  prefix: string;
  readySet: ReadySet;
  holds: Holds;
  outcomes: LocationOutcomes;
  /** The budget before learning (settings and overrides). Default: HighLevel's, 100 per 10 s and 200,000 a day. */
  budget?: (locationId: string) => Budget;
  /** GHL_DAILY_RESET as ms after midnight UTC (for the day counted). Default 0. */
  resetOffsetMs?: number;
}

const DEFAULT_BUDGET: Budget = { max: 100, windowMs: 10_000, daily: 200_000 };

/** What `status` and metrics show, for many locations at once: one pipelined round trip per 500. */
export async function snapshot(s: SnapshotSources, locationIds: readonly string[]): Promise<LocationSnapshot[]> {
  const now = await redisNow(s.redis);
  const time: SnapshotTime = { now, day: String(dayIndex(now, s.resetOffsetMs ?? 0)) };
  // A location's own keys (one slot: its `{id}`), then its place in the ready set (the `{ready}` slot).
  const own = {
    queue: { read: (p, id) => readQueueCounts(p, s.prefix, id), parse: (r) => parseQueueCounts(r) },
    outcomes: { read: (p, id) => s.outcomes.readOutcomes(p, id), parse: (r) => s.outcomes.parseOutcomes(r) },
    budget: { read: (p, id) => readBudgetFields(p, s.prefix, id, time), parse: (r, id) => parseBudgetFields(r, s.budget?.(id) ?? DEFAULT_BUDGET, time) },
    hold: { read: (p, id) => s.holds.readHold(p, id), parse: (r) => s.holds.parseHold(r, now) },
  } satisfies Record<string, Field<unknown>>;
  const place = {
    place: { read: (p, id) => s.readySet.readPlace(p, id), parse: (r) => s.readySet.parsePlace(r) },
  } satisfies Record<string, Field<unknown>>;

  const out: LocationSnapshot[] = [];
  for (let start = 0; start < locationIds.length; start += 500) {
    const ids = locationIds.slice(start, start + 500);
    let rows: { own: Parsed<typeof own>; place: Parsed<typeof place> }[];
    if (mixesSlots(s.redis)) {
      const p = s.redis.pipeline();
      const spans = ids.map((id) => ({ own: queueFields(p, id, own), place: queueFields(p, id, place) }));
      const r = values(await p.exec());
      rows = ids.map((id, i) => {
        const span = spans[i] as (typeof spans)[number];
        return { own: parseFields(r, span.own, id, own), place: parseFields(r, span.place, id, place) };
      });
    } else {
      // Redis Cluster: a pipeline may not mix slots, so one per location (ioredis sends them to
      // each location's master together) and one for the ready set.
      const [owns, places] = await Promise.all([
        Promise.all(
          ids.map(async (id) => {
            const p = s.redis.pipeline();
            const spans = queueFields(p, id, own);
            return parseFields(values(await p.exec()), spans, id, own);
          }),
        ),
        (async () => {
          const p = s.redis.pipeline();
          const spans = ids.map((id) => queueFields(p, id, place));
          const r = values(await p.exec());
          return ids.map((id, i) => parseFields(r, spans[i] as Spans<typeof place>, id, place));
        })(),
      ]);
      rows = ids.map((_, i) => ({ own: owns[i] as Parsed<typeof own>, place: places[i] as Parsed<typeof place> }));
    }
    ids.forEach((locationId, i) => {
      const row = rows[i] as (typeof rows)[number];
      const { queue, outcomes, budget, hold } = row.own;
      out.push({ locationId, ...queue, hold, ...outcomes, ...budget, ...row.place.place });
    });
  }
  return out;
}
