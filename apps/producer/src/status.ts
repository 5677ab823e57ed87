/**
 * `ingest status [--location ID] [--all] [--json]`: where every location and import stands.
 * Everything comes from one read of each location's state (`LocationReader.snapshot`, pipelined),
 * so it answers in about a second with thousands of locations. The text opens with totals and the
 * locations that need a person (paused, parked, dead letters, due long without a worker), then the
 * busiest few; `--all` lists every location, `--json` gives everything.
 */
import { budgetFor, LocationReader, readBudgetOverrides, readImports, type Config, type ImportCounts, type LocationSnapshot } from '@ghl-ingest/queue';
import type { RedisClient } from '@ghl-ingest/queue';

export type LocationStateName = 'running' | 'idle' | 'waiting for the burst window' | 'parked' | 'paused';

export interface LocationStatus {
  locationId: string;
  state: LocationStateName;
  /** Why, for paused and parked. */
  reason?: string;
  parkedUntil?: string;
  pending: number;
  inFlight: number;
  delayedForRetry: number;
  delivered: number;
  skipped: number;
  deadLettered: number;
  /** Lookups at HighLevel before posting again after an unknown outcome, by result. */
  lookups: { found: number; absent: number; undecided: number };
  /** Contacts named by phone or email: found at HighLevel, or created there. */
  contacts: { found: number; created: number };
  uploads: number;
  /** Requests counted in the current window (answered and in flight), against the budget. */
  sentInWindow: number;
  budget: { max: number; windowMs: number; daily: number };
  dailyUsed: number;
  dailyLeft: number;
  /** Seconds until what is pending is sent, at the location's budget. */
  etaSeconds: number | null;
  /** Seconds it has been due with no worker taking it (0 if held or not due). */
  dueForSeconds: number;
}

/** An import as `status` shows it: `dead` named as in the location rows. */
export type ImportStatus = Omit<ImportCounts, 'dead'> & { deadLettered: number };

/** Summed over every location: the message counts and requests in the current windows. */
export type StatusTotals = Pick<
  LocationStatus,
  'pending' | 'inFlight' | 'delayedForRetry' | 'delivered' | 'skipped' | 'deadLettered' | 'lookups' | 'contacts' | 'uploads' | 'sentInWindow' | 'etaSeconds'
> & {
  locations: number;
  byState: Record<LocationStateName, number>;
  /** What the budgets of the locations with messages pending allow per second. */
  budgetPerSecond: number;
  /** Locations with work that no worker holds now, and how long the longest has been due. */
  dueUnheld: number;
  longestDueSeconds: number;
};

export interface Status {
  totals: StatusTotals;
  locations: LocationStatus[];
  imports: ImportStatus[];
}

/** A location due this long with no worker taking it needs attention: are workers running? */
const DUE_TOO_LONG_S = 60;

export async function readStatus(redis: RedisClient, config: Config, only?: string): Promise<Status> {
  const overrides = readBudgetOverrides(config.rateLimitsFile);
  const budget = (id: string) => budgetFor(id, config.rateLimit, overrides);
  const state = new LocationReader(redis, { prefix: config.queuePrefix, budget, resetOffsetMs: config.dailyResetOffsetMs });
  const ids = only === undefined ? await state.known() : [only];
  const now = Date.now();
  const locations = (await state.snapshot(ids)).map((s) => toStatus(s, now));
  const imports: ImportStatus[] =
    only === undefined ? (await readImports(redis, config.queuePrefix)).map(({ dead, ...i }) => ({ ...i, deadLettered: dead })) : [];
  return { totals: totalsOf(locations), locations, imports };
}

function toStatus(s: LocationSnapshot, now: number): LocationStatus {
  const { max, daily, windowMs } = s.budget;
  const pending = s.waiting + s.delayed;
  const state: LocationStateName =
    s.paused || s.hold?.state === 'paused'
      ? 'paused'
      : s.hold?.state === 'parked'
        ? 'parked'
        : s.blockedUntil > now || (s.sentInWindow >= max && pending > 0)
          ? 'waiting for the burst window'
          : pending + s.active > 0
            ? 'running'
            : 'idle';
  const dailyLeft = Math.max(0, daily - s.dailyUsed);
  const out: LocationStatus = {
    locationId: s.locationId,
    state,
    pending,
    inFlight: s.active,
    delayedForRetry: s.delayed,
    delivered: s.delivered,
    skipped: s.skipped,
    deadLettered: s.dead,
    lookups: { ...s.lookups },
    contacts: { ...s.contacts },
    uploads: s.uploads,
    sentInWindow: s.sentInWindow,
    budget: s.budget,
    dailyUsed: s.dailyUsed,
    dailyLeft,
    etaSeconds: pending + s.active === 0 ? 0 : eta(pending + s.active, (max * 1000) / windowMs, dailyLeft, daily),
    dueForSeconds: !s.held && s.dueAt !== undefined && s.dueAt < now && state !== 'paused' ? Math.floor((now - s.dueAt) / 1000) : 0,
  };
  if (s.hold !== undefined) out.reason = s.hold.reason;
  if (s.hold?.state === 'parked') out.parkedUntil = new Date(s.hold.until).toISOString();
  return out;
}

function totalsOf(locations: LocationStatus[]): StatusTotals {
  const t: StatusTotals = {
    locations: locations.length,
    byState: { running: 0, 'waiting for the burst window': 0, parked: 0, paused: 0, idle: 0 },
    pending: 0,
    inFlight: 0,
    delayedForRetry: 0,
    delivered: 0,
    skipped: 0,
    deadLettered: 0,
    lookups: { found: 0, absent: 0, undecided: 0 },
    contacts: { found: 0, created: 0 },
    uploads: 0,
    sentInWindow: 0,
    budgetPerSecond: 0,
    etaSeconds: 0,
    dueUnheld: 0,
    longestDueSeconds: 0,
  };
  for (const l of locations) {
    t.byState[l.state] += 1;
    t.pending += l.pending;
    t.inFlight += l.inFlight;
    t.delayedForRetry += l.delayedForRetry;
    t.delivered += l.delivered;
    t.skipped += l.skipped;
    t.deadLettered += l.deadLettered;
    t.lookups.found += l.lookups.found;
    t.lookups.absent += l.lookups.absent;
    t.lookups.undecided += l.lookups.undecided;
    t.contacts.found += l.contacts.found;
    t.contacts.created += l.contacts.created;
    t.uploads += l.uploads;
    t.sentInWindow += l.sentInWindow;
    if (l.pending + l.inFlight > 0) t.budgetPerSecond += (l.budget.max * 1000) / l.budget.windowMs;
    if (l.etaSeconds === null || t.etaSeconds === null) t.etaSeconds = null;
    else t.etaSeconds = Math.max(t.etaSeconds, l.etaSeconds);
    if (l.dueForSeconds > 0) {
      t.dueUnheld += 1;
      t.longestDueSeconds = Math.max(t.longestDueSeconds, l.dueForSeconds);
    }
  }
  return t;
}

/** Seconds to send `n` at `perSecond`, allowing for the daily budget: what today leaves, then whole days. */
function eta(n: number, perSecond: number, leftToday: number, daily: number): number {
  if (n <= leftToday) return Math.ceil(n / perSecond);
  const days = Math.ceil((n - leftToday) / daily);
  return Math.ceil(days * 86_400 + (n - leftToday - (days - 1) * daily) / perSecond);
}

/** Why a location needs a person, or undefined. */
function attention(l: LocationStatus): string | undefined {
  if (l.state === 'paused') return `paused: ${l.reason ?? 'queue paused'}`;
  if (l.state === 'parked') return `parked until ${l.parkedUntil ?? '?'}: ${l.reason ?? ''}`;
  if (l.dueForSeconds >= DUE_TOO_LONG_S) return `due for ${dur(l.dueForSeconds)} and no worker has taken it: are workers running?`;
  if (l.deadLettered > 0) return `${l.deadLettered} dead-lettered (ingest dlq list --location ${l.locationId})`;
  return undefined;
}

const n = (x: number) => x.toLocaleString('en-US');
const dur = (s: number | null) => (s === null ? '?' : s === 0 ? '-' : duration(s));

/** Whole seconds for people: `45s`, `12m`, `5h`, `3d`. */
export function duration(s: number): string {
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/** The busiest rows shown without --all. */
const BUSIEST = 10;
/** Locations needing attention listed without --all (the count is always given). */
const ATTENTION = 20;

export function renderStatus(status: Status, options: { all?: boolean } = {}): string {
  const { totals: t, locations } = status;
  const out: string[] = [];
  if (locations.length === 0) {
    out.push('no locations yet: nothing has been enqueued under this QUEUE_PREFIX');
  } else {
    const states = (Object.entries(t.byState) as [LocationStateName, number][]).filter(([, c]) => c > 0).map(([s, c]) => `${n(c)} ${s}`);
    out.push(
      `locations: ${n(t.locations)} (${states.join(', ')})`,
      `messages: ${n(t.pending)} pending, ${n(t.inFlight)} in flight, ${n(t.delayedForRetry)} retrying, ${n(t.delivered)} delivered, ${n(t.skipped)} skipped, ${n(t.deadLettered)} dead-lettered`,
      `rate: ${n(t.sentInWindow)} requests in the current windows; budget of the busy locations ${n(Math.round(t.budgetPerSecond))}/s; eta ${dur(t.etaSeconds)}`,
    );
    const { found, absent, undecided } = t.lookups;
    if (found + absent + undecided > 0) {
      out.push(`lookups before posting again: ${n(found)} found (not posted twice), ${n(absent)} absent, ${n(undecided)} undecided (posted without knowing)`);
    }
    if (t.contacts.found + t.contacts.created + t.uploads > 0) {
      out.push(`contacts by phone or email: ${n(t.contacts.found)} found, ${n(t.contacts.created)} created; files uploaded: ${n(t.uploads)}`);
    }
    if (t.dueUnheld > 0) out.push(`waiting for a worker: ${n(t.dueUnheld)} locations, the longest for ${dur(t.longestDueSeconds)}`);
    const needy = locations.filter((l) => attention(l) !== undefined);
    if (needy.length > 0) {
      const shown = options.all === true ? needy : needy.slice(0, ATTENTION);
      out.push('', `needs attention: ${n(needy.length)}${shown.length < needy.length ? ` (first ${shown.length}; --all for every one)` : ''}`);
      for (const l of shown) out.push(`  ${l.locationId}: ${attention(l) ?? ''}`);
    }
    const rows =
      options.all === true
        ? locations
        : [...locations]
            .filter((l) => l.pending + l.inFlight > 0)
            .sort((a, b) => b.pending + b.inFlight - (a.pending + a.inFlight))
            .slice(0, BUSIEST);
    const heading =
      options.all === true
        ? `every location (${n(locations.length)}):`
        : rows.length === 0
          ? 'no location has messages pending'
          : `busiest ${rows.length} of ${n(locations.filter((l) => l.pending + l.inFlight > 0).length)} with messages pending (--all for every location):`;
    out.push('', heading);
    if (rows.length > 0) out.push(locationTable(rows));
    // A single location asked for, or very few: its row whatever its state.
    if (options.all !== true && rows.length === 0 && locations.length <= BUSIEST) out.push(locationTable(locations));
  }
  if (status.imports.length > 0) {
    out.push(
      '',
      table(
        ['import', 'file', 'state', 'accepted', 'rejected', 'delivered', 'dead', 'pending'],
        status.imports.map((i) => [
          i.importId,
          i.file,
          i.state,
          String(i.accepted),
          String(i.rejected),
          String(i.delivered + i.alreadyDelivered),
          String(i.deadLettered),
          String(i.pending),
        ]),
      ),
    );
  }
  return `${out.join('\n')}\n`;
}

function locationTable(locations: LocationStatus[]): string {
  const rows = locations.map((l) => [
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
  return table(['location', 'state', 'pending', 'in flight', 'retrying', 'delivered', 'skipped', 'dead', 'rate', 'daily left', 'eta'], rows);
}

export function table(header: string[], rows: string[][]): string {
  return columns([header, ...rows]).join('\n');
}

/** Rows as lines, their cells padded into columns two spaces apart. */
export function columns(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((cells) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}
