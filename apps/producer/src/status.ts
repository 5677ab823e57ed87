/**
 * `ingest status [--location ID] [--json]`: where every location and import stands, read from
 * Redis: queue counts, outcomes, the rate limiter's state, holds (paused, parked), and an ETA.
 */
import {
  budgetFor,
  dayIndex,
  effectiveBudget,
  keysFor,
  listLocations,
  locationQueueName,
  rateKeys,
  readBudgetOverrides,
  readHold,
  readImports,
  type Config,
  type ImportCounts,
} from '@ghl-ingest/queue';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

export interface LocationStatus {
  locationId: string;
  state: 'running' | 'idle' | 'waiting for the burst window' | 'parked' | 'paused';
  /** Why, for paused and parked. */
  reason?: string;
  parkedUntil?: string;
  pending: number;
  inFlight: number;
  delayedForRetry: number;
  delivered: number;
  skipped: number;
  deadLettered: number;
  /** Requests answered in the last window, against the budget. */
  sentInWindow: number;
  budget: { max: number; windowMs: number; daily: number };
  dailyUsed: number;
  dailyLeft: number;
  /** Seconds until what is pending is sent, at the location's budget. */
  etaSeconds: number | null;
}

/** An import as `status` shows it: `dead` named as in the location rows. */
export type ImportStatus = Omit<ImportCounts, 'dead'> & { deadLettered: number };

export async function readStatus(redis: Redis, config: Config, only?: string): Promise<{ locations: LocationStatus[]; imports: ImportStatus[] }> {
  const overrides = readBudgetOverrides(config.rateLimitsFile);
  const prefix = config.queuePrefix;
  const keys = keysFor(prefix);
  const ids = only === undefined ? await listLocations(redis, prefix) : [only];
  const [seconds, micros] = (await redis.time()) as [number | string, number | string];
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  const locations: LocationStatus[] = [];
  for (const locationId of ids) {
    const queue = new Queue(locationQueueName(locationId), { connection: redis, prefix });
    try {
      const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
      const paused = await queue.isPaused();
      const hold = await readHold(redis, prefix, locationId);
      const stats = await redis.hgetall(keys.stats(locationId));
      const rk = rateKeys(prefix, locationId);
      const learned = await redis.hgetall(rk.learned);
      const n = (v: string | undefined) => (v === undefined ? undefined : Number(v));
      const b = effectiveBudget(budgetFor(locationId, config.rateLimit, overrides), {
        max: n(learned.max),
        windowMs: n(learned.windowMs),
        daily: n(learned.daily),
      });
      const { max, daily } = b;
      const sentInWindow = (await redis.zcount(rk.answered, `(${now}`, '+inf')) + (await redis.zcount(rk.inflight, `(${now}`, '+inf'));
      const dailyUsed = Number((await redis.hget(rk.daily, String(dayIndex(now, config.dailyResetOffsetMs)))) ?? 0);
      const blocked = Number((await redis.get(rk.block)) ?? 0) > now;
      const pending = (counts.wait ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0);
      const inFlight = counts.active ?? 0;
      const state: LocationStatus['state'] =
        paused || hold?.state === 'paused' ? 'paused'
        : hold?.state === 'parked' ? 'parked'
        : blocked || sentInWindow >= max ? 'waiting for the burst window'
        : pending + inFlight > 0 ? 'running'
        : 'idle';
      const perSecond = (max * 1000) / b.windowMs;
      const s: LocationStatus = {
        locationId,
        state,
        pending,
        inFlight,
        delayedForRetry: counts.delayed ?? 0,
        delivered: Number(stats.delivered ?? 0),
        skipped: Number(stats.skipped ?? 0),
        deadLettered: Number(stats.dead ?? 0),
        sentInWindow,
        budget: b,
        dailyUsed,
        dailyLeft: Math.max(0, daily - dailyUsed),
        etaSeconds: pending + inFlight === 0 ? 0 : eta(pending + inFlight, perSecond, Math.max(0, daily - dailyUsed), daily),
      };
      if (hold !== undefined) s.reason = hold.reason;
      if (hold?.state === 'parked') s.parkedUntil = new Date(hold.until).toISOString();
      locations.push(s);
    } finally {
      await queue.close();
    }
  }
  const imports: ImportStatus[] =
    only === undefined
      ? (await readImports(redis, prefix)).map(({ dead, ...i }) => ({ ...i, deadLettered: dead }))
      : [];
  return { locations, imports };
}

/** Seconds to send `n` at `perSecond`, allowing for the daily budget: what today leaves, then whole days. */
function eta(n: number, perSecond: number, leftToday: number, daily: number): number {
  if (n <= leftToday) return Math.ceil(n / perSecond);
  const days = Math.ceil((n - leftToday) / daily);
  return Math.ceil(days * 86_400 + (n - leftToday - (days - 1) * daily) / perSecond);
}

export function renderStatus(status: { locations: LocationStatus[]; imports: ImportStatus[] }): string {
  const dur = (s: number | null) =>
    s === null ? '?' : s === 0 ? '-' : s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172_800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86_400)}d`;
  const rows = status.locations.map((l) => [
    l.locationId,
    l.state === 'parked' ? `parked until ${l.parkedUntil ?? '?'}` : l.state,
    String(l.pending),
    String(l.inFlight),
    String(l.delayedForRetry),
    String(l.delivered),
    String(l.skipped),
    String(l.deadLettered),
    `${l.sentInWindow}/${l.budget.max} per ${l.budget.windowMs / 1000}s`,
    `${l.dailyLeft}`,
    dur(l.etaSeconds),
  ]);
  const out = [table(['location', 'state', 'pending', 'in flight', 'retrying', 'delivered', 'skipped', 'dead', 'rate', 'daily left', 'eta'], rows)];
  for (const l of status.locations) if (l.reason !== undefined) out.push(`  ${l.locationId}: ${l.reason}`);
  if (status.imports.length > 0) {
    out.push('', table(
      ['import', 'file', 'state', 'accepted', 'rejected', 'delivered', 'dead', 'pending'],
      status.imports.map((i) => [i.importId, i.file, i.state, String(i.accepted), String(i.rejected), String(i.delivered + i.alreadyDelivered), String(i.deadLettered), String(i.pending)]),
    ));
  }
  if (status.locations.length === 0) out.push('no locations yet: nothing has been enqueued under this QUEUE_PREFIX');
  return `${out.join('\n')}\n`;
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
