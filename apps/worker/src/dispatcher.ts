/**
 * The dispatcher: how a worker process serves any number of locations with a bounded pool.
 *
 * Each location keeps its own BullMQ queue (`loc.{id}`), but no process runs a BullMQ Worker per
 * location. Producers mark a location due in a Redis ready set; a dispatcher claims due locations
 * for a lease (those with live messages first, then the longest due), takes their jobs through
 * BullMQ's own scripts on the process's one shared connection, and ends each turn by telling the
 * ready set when the location is next due: never (no work), now (its slice is over), or after a
 * wait (its budget). A location is held by one process at a time; a held location whose process
 * died becomes due again when the lease ends, and its jobs come back through BullMQ's stalled-job
 * check. So a process holds one shared connection and one subscriber, whatever the number of
 * locations; a known idle location costs nothing; and busy locations take turns.
 */
import { hostname } from 'node:os';
import {
  coerceError,
  deadLetterAdded,
  LocationQueues,
  processClock,
  readWake,
  type Budgets,
  type DeadLetterRecord,
  type DeadLetters,
  type Lease,
  type Logger,
  type Notice,
  type TurnEnd,
  type WorkerLocations,
} from '@ghl-ingest/queue';
import { jobDataSchema } from '@ghl-ingest/schema';
import type { Job } from 'bullmq';
import type { RedisClient } from '@ghl-ingest/queue';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
import type { DeliveryResult } from './deliver.ts';
import { LocationJobs, type Next } from './location-jobs.ts';
import { Renewals, type Holding } from './renewals.ts';
import type { LocationTurn } from './turn.ts';
import { isDeadLettered, LocationPaused, LocationWait, LockLost, RetryableDeliveryError, RetryLater, SlotFarAhead, WorkerStopping } from './signals.ts';

export interface DispatcherOptions {
  /** The process's shared connection (worker role). */
  connection: RedisClient;
  /** A second connection, for the wake-up channel only. */
  subscriber: RedisClient;
  prefix: string;
  state: WorkerLocations;
  /** The locations' rate budgets: each held in memory by the process that holds the location. */
  budgets: Budgets;
  /** Runs a job; `lockLost` aborts when its lock could not be renewed (another worker may hold it). */
  processor: (job: Job, lockLost: AbortSignal, turn: LocationTurn) => Promise<DeliveryResult>;
  deadLetters: DeadLetters;
  /** Jobs active in this process at most, all locations together. */
  maxActive: number;
  /** Jobs of one location active in this process at most. */
  perLocation: (locationId: string) => number;
  /** Job lock and lease length, ms (WORKER_LOCK_MS); both renewed at half of it. */
  lockMs: number;
  /** How long a process keeps a busy location before it goes to the back of the line (ms). Default 1,000. */
  sliceMs?: number;
  /** Longest sleep when nothing is due (ms): the fallback to a missed wake-up. Default 1,000. */
  idlePollMs?: number;
  logger: Logger;
  random?: () => number;
  /** Default: base 1 s, cap 5 min. */
  backoff?: BackoffOptions;
  /** Told of each location this process serves for the first time (the dashboard lists its queue). */
  onServe?: (locationId: string) => void;
  /** NOTIFY_WEBHOOK_URL: told of each dead letter this dispatcher writes (a job failed outside delivery), right after. */
  notify?: (notice: Notice) => Promise<void>;
}

/** A location this process holds now (what Renewals keeps held, and the turn's own state). */
interface Lane extends Holding {
  /** The location's budget for this turn, once loaded. */
  turn: Promise<LocationTurn>;
  /** Its renewal found another process holding it: nothing more is sent, and the turn ends. */
  lost: boolean;
  /** Claimed again while held here (its lease had lapsed): this turn ends, and the next starts afresh. */
  stale: boolean;
  loops: number;
  startedAt: number;
  /** Set when the location must wait: the longest wait asked for. */
  waitMs: number | undefined;
  paused: boolean;
  /** A fetch found no job to take. */
  exhausted: boolean;
  /** Loops spawned beyond the lane's cap for live messages: as many loops retire after their job. */
  extra: number;
  /** This turn ran BullMQ's stalled-job check: a turn that ends on a wait has its next holder check again. */
  checked: boolean;
  done: Promise<void>;
  finish: () => void;
}

/** Queue objects kept for locations served lately (each holds a few dozen key names and listeners). */
const QUEUE_CACHE = 256;
/** How often a process with no free place asks whether other locations are due (ms). */
const OTHERS_DUE_EVERY_MS = 250;
/** A lane's loops at most while other locations wait for their turn. */
const FAIR_SHARE_LOOPS = 2;
/**
 * Places beyond maxActive, for locations that live messages made due while every place is taken:
 * places free when turns end, often together (lanes claimed together end their slices together),
 * so a live message could wait most of a slice for one.
 */
const LIVE_PLACES = 2;

export class Dispatcher {
  readonly #o: DispatcherOptions;
  readonly #log: Logger;
  readonly #lanes = new Map<string, Lane>();
  readonly #queues: LocationQueues;
  readonly #renewals: Renewals;
  readonly #served = new Set<string>();
  readonly #workerName = `${hostname()}:${process.pid}`;
  #loops = 0;
  #othersDue = false;
  #othersDueAt = 0;
  /** Live messages made a location due since the last claim. */
  #liveDue = false;
  #closing = false;
  #wake: (() => void) | undefined;
  #kicked = false;
  #main: Promise<void> | undefined;
  #tokenSeq = 0;

  constructor(options: DispatcherOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'dispatcher' });
    const random = options.random ?? Math.random;
    // What BullMQ's scripts read from a worker's options, given to the queue objects instead:
    // the job lock, the stalled-job check, what to keep of finished jobs, and the backoff.
    this.#queues = new LocationQueues({
      connection: options.connection,
      prefix: options.prefix,
      max: QUEUE_CACHE,
      inUse: (locationId) => this.#lanes.has(locationId),
      onError: (error, locationId) => this.#log.warn({ err: coerceError(error), locationId }, 'queue error'),
      queue: {
        // BullMQ would send INFO for each queue object: the worker's own connection checked Redis once.
        skipVersionCheck: true,
        name: this.#workerName,
        lockDuration: options.lockMs,
        stalledInterval: options.lockMs,
        maxStalledCount: 10,
        removeOnComplete: { age: 24 * 3600, count: 1000 },
        removeOnFail: { count: 1000 },
        settings: {
          backoffStrategy: (attempt: number, _type?: string, error?: Error) =>
            backoffDelay(attempt, random, error instanceof RetryableDeliveryError ? error.retryAfterMs : undefined, options.backoff ?? DEFAULT_BACKOFF),
        },
      },
    });
    this.#renewals = new Renewals({
      state: options.state,
      budgets: options.budgets,
      lockMs: options.lockMs,
      logger: this.#log,
      holdings: () => this.#lanes.values(),
      onLost: (holding, why) => this.#lose(holding as Lane, why),
    });
  }

  async start(): Promise<void> {
    const sub = this.#o.subscriber;
    sub.on('message', (_channel: string, message: string) => {
      const wake = readWake(message);
      if (wake.kind === 'live') this.#liveArrived(wake.locationId);
      else {
        if (wake.live) this.#liveDue = true;
        this.#kick();
      }
    });
    await sub.subscribe(this.#o.state.wakeChannel);
    this.#renewals.start();
    this.#main = this.#run();
  }

  /** Locations held by this process now. */
  get held(): string[] {
    return [...this.#lanes.keys()];
  }

  /** Jobs active in this process now. */
  get activeJobs(): number {
    return this.#loops;
  }

  /** Stops taking work, lets active jobs finish for up to `deadlineMs`, then cuts them off. */
  async close(deadlineMs: number): Promise<{ forced: boolean }> {
    this.#closing = true;
    this.#kick();
    this.#renewals.stop();
    let timer: NodeJS.Timeout | undefined;
    const graceful = Promise.all([this.#main, ...[...this.#lanes.values()].map((l) => l.done)]).then(() => false);
    const deadline = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), deadlineMs);
    });
    const forced = await Promise.race([graceful, deadline]);
    clearTimeout(timer);
    // Cut off past the deadline: the jobs stay active with locks that expire, the leases end,
    // and another worker takes both again (the ledger keeps a job from being posted twice).
    await this.#o.subscriber.quit().catch(() => this.#o.subscriber.disconnect());
    await this.#queues.close();
    return { forced };
  }

  #isClosing(): boolean {
    return this.#closing;
  }

  #wasKicked(): boolean {
    return this.#kicked;
  }

  /** Wakes the main loop; one that is not asleep yet claims again instead of sleeping. */
  #kick(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    if (wake === undefined) this.#kicked = true;
    else wake();
  }

  async #run(): Promise<void> {
    const idle = this.#o.idlePollMs ?? 1_000;
    while (!this.#closing) {
      // A kick from here on (a turn ended, a location became due) means: look again.
      this.#kicked = false;
      let sleepMs = idle;
      const free = this.#o.maxActive - this.#loops;
      if (free <= 0 && Date.now() - this.#othersDueAt >= OTHERS_DUE_EVERY_MS) {
        // Full: whether others wait decides if the lanes here keep their turns short.
        this.#othersDueAt = Date.now();
        try {
          this.#othersDue = (await this.#o.state.dueCount()) > 0;
        } catch (error) {
          this.#log.warn({ err: coerceError(error) }, 'could not count due locations');
        }
        sleepMs = OTHERS_DUE_EVERY_MS;
      }
      if (free <= 0 && this.#liveDue && free + LIVE_PLACES > 0) {
        // Full: a location live messages made due takes one of the places kept for them.
        this.#liveDue = false;
        await this.#claim(free + LIVE_PLACES, true);
      }
      if (free > 0) {
        // Live locations go first in any claim.
        this.#liveDue = false;
        const asked = Math.min(free, 32);
        const claimed = await this.#claim(asked, false);
        if (claimed !== undefined) {
          // More locations are due than this process took: its lanes keep to a fair share.
          this.#othersDue = claimed.taken === asked || claimed.nextDueInMs === 0;
          if (claimed.taken === asked) continue;
          if (claimed.nextDueInMs !== undefined) sleepMs = Math.min(idle, Math.max(1, claimed.nextDueInMs));
        }
      }
      // close() or a kick may have come while claiming: its wake-up found no sleeper.
      if (this.#isClosing()) break;
      if (this.#wasKicked()) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, sleepMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /**
   * Claims up to `count` due locations (`liveOnly`: only those live messages made due) and starts
   * their lanes; undefined when the claim failed (the next loop tries again).
   */
  async #claim(count: number, liveOnly: boolean): Promise<{ taken: number; nextDueInMs: number | undefined } | undefined> {
    try {
      const sent = processClock();
      const { leases, nextDueInMs } = await this.#o.state.claim(count, this.#o.lockMs, liveOnly);
      for (const lease of leases) this.#startLane(lease, sent + this.#o.lockMs);
      return { taken: leases.length, nextDueInMs };
    } catch (error) {
      this.#log.warn({ err: coerceError(error) }, 'could not claim locations');
      return undefined;
    }
  }

  #startLane(lease: Lease, leaseBound: number): void {
    const existing = this.#lanes.get(lease.locationId);
    if (existing !== undefined) {
      // Taken again while held here: its lease had lapsed, and another process may have spent its
      // budget meanwhile. The lane ends its turn under the newer lease, and the next one loads
      // the budget afresh.
      existing.lease = lease;
      existing.stale = true;
      return;
    }
    let finish!: () => void;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const budget = this.#o.budgets.hold(lease.locationId, Number(lease.lease));
    const turn = budget.then((b): LocationTurn => ({ budget: b, holds: () => !lane.lost && !lane.stale && processClock() < lane.leaseBound }));
    // A load that failed ends the turn (its first loop finds no budget); the lease then ends.
    turn.catch(() => undefined);
    const lane: Lane = {
      lease,
      budget,
      turn,
      leaseBound,
      lost: false,
      stale: false,
      jobs: this.#jobsOf(lease.locationId),
      loops: 0,
      active: new Map(),
      startedAt: Date.now(),
      waitMs: undefined,
      paused: false,
      exhausted: false,
      extra: 0,
      checked: false,
      done,
      finish,
    };
    this.#lanes.set(lease.locationId, lane);
    if (!this.#served.has(lease.locationId)) {
      this.#served.add(lease.locationId);
      this.#o.onServe?.(lease.locationId);
    }
    // Its first loop takes its place now (claims never ask for more locations than free places).
    this.#spawn(lane, 'first');
  }

  /**
   * Live messages came for a location held here. Its loops may all hold backfill jobs, each waiting
   * for a slot: one more loop takes the live job now, and it ranks ahead of their reservations for
   * the next slot that frees (instead of waiting for a loop to finish a post first). So it does
   * while the turn ends on a wait its loops still serve (their slots are near): the budget decides
   * whether the live one may go sooner, and puts it back if not.
   */
  #liveArrived(locationId: string): void {
    const lane = this.#lanes.get(locationId);
    if (lane === undefined || lane.loops === 0 || !this.#mayTakeLive(lane)) return;
    this.#spawn(lane, 'live');
  }

  /** Whether a loop spawned for live messages takes one: as #mayContinue, but a turn that ends on a wait still may. */
  #mayTakeLive(lane: Lane): boolean {
    return !this.#closing && !lane.paused && !lane.lost && !lane.stale;
  }

  /**
   * One more job loop for the lane, if the process and the location allow it. While other
   * locations are due, a lane keeps to two loops: enough for a location's HighLevel budget (10
   * requests a second at 50 ms), and the rest of the process's places go to the others' turns.
   */
  #spawn(lane: Lane, why: 'first' | 'more' | 'live' = 'more'): void {
    const cap = Math.min(this.#o.perLocation(lane.lease.locationId), this.#othersDue ? FAIR_SHARE_LOOPS : Infinity);
    if (why !== 'first' && this.#loops >= this.#o.maxActive) return;
    if (why === 'more' && lane.loops >= cap) return;
    // A live loop beyond the cap: one loop of the lane retires after its job, and the lane is back within it.
    if (why === 'live' && lane.loops >= cap) lane.extra += 1;
    this.#loops += 1;
    lane.loops += 1;
    void this.#loop(lane, why)
      .catch((error: unknown) => this.#log.warn({ err: coerceError(error), locationId: lane.lease.locationId }, 'job loop failed'))
      .finally(() => {
        this.#loops -= 1;
        lane.loops -= 1;
        // Claim again once the turn has ended: the location's new place is then in the ready set.
        if (lane.loops === 0) void this.#endLane(lane).finally(() => this.#kick());
        else this.#kick();
      });
  }

  /** Takes a job, runs it, and takes the next one with its completion, until the turn ends. */
  async #loop(lane: Lane, why: 'first' | 'more' | 'live'): Promise<void> {
    const turn = await lane.turn;
    // Jobs a lapsed holder left active come back through BullMQ's stalled-job check: a lease left
    // behind says so, and so does the budget (a failover or restart may have lost the lease too).
    if (why === 'first' && (lane.lease.check === true || turn.budget.lapsed)) await this.#checkStalled(lane);
    const token = `${this.#workerName}:${(this.#tokenSeq += 1)}`;
    let job = why === 'live' && this.#mayTakeLive(lane) ? this.#taken(lane, await lane.jobs.fetch(token)) : await this.#fetch(lane, token);
    // Two loops always (one posts while the other takes the next job, a live one first), more only
    // while the budget has room now: a loop beyond that would hold a job only to wait for a slot.
    if (job !== undefined && (lane.loops < 2 || turn.budget.hasRoom())) this.#spawn(lane);
    while (job !== undefined) {
      job = await this.#handle(lane, turn, job, token);
    }
  }

  /** Whether the lane's turn goes on: a turn ends after its slice only while other locations are due. */
  #mayContinue(lane: Lane): boolean {
    if (this.#closing || lane.waitMs !== undefined || lane.paused || lane.lost || lane.stale) return false;
    if (Date.now() - lane.startedAt < (this.#o.sliceMs ?? 1_000)) return true;
    if (this.#othersDue) return false;
    lane.startedAt = Date.now();
    return true;
  }

  async #fetch(lane: Lane, token: string): Promise<Job | undefined> {
    if (!this.#mayContinue(lane)) return undefined;
    return this.#taken(lane, await lane.jobs.fetch(token));
  }

  /** The next job a move took, if any; none left to take ends the turn once its loops end. */
  #taken(lane: Lane, next: Next): Job | undefined {
    if (next === 'empty') {
      lane.exhausted = true;
      return undefined;
    }
    return next;
  }

  /** Runs one job and moves it on; returns the next job of the location when the turn goes on. */
  async #handle(lane: Lane, turn: LocationTurn, job: Job, token: string): Promise<Job | undefined> {
    const id = String(job.id);
    job.token = token;
    const lost = new AbortController();
    lane.active.set(id, { token, lost });
    let result: DeliveryResult | undefined;
    let failure: unknown;
    // Paced while this process keeps the location as long as it likes; while others wait for a
    // turn, the budget is spent as it allows within the turn (what it saved up while in line).
    turn.budget.paced = !this.#othersDue;
    try {
      result = await this.#o.processor(job, lost.signal, turn);
    } catch (error) {
      failure = error;
    }
    lane.active.delete(id);
    // Not ours any more: another worker may hold the job, which it moves on itself.
    if (failure instanceof LockLost) return undefined;
    try {
      // Take the location's next job with this one's completion, while the turn goes on (and
      // this loop is not one too many: one spawned for live messages beyond the cap retires).
      const fetchNext = this.#mayContinue(lane) && !this.#retires(lane);
      if (failure === undefined) {
        return this.#taken(lane, await lane.jobs.complete(job, result, token, fetchNext));
      }
      if (failure instanceof SlotFarAhead && lane.loops > 1) {
        // Another loop serves the location: this one ends, and the turn goes on.
        await lane.jobs.putBack(job, token);
        return undefined;
      }
      if (failure instanceof LocationWait) {
        // The earliest moment any of its jobs may go: a wait that proves too short costs one more turn.
        lane.waitMs = Math.min(lane.waitMs ?? Infinity, failure.waitMs);
        this.#log.debug({ locationId: lane.lease.locationId, jobId: id, waitMs: Math.round(failure.waitMs) }, 'job put back: the location waits');
        await lane.jobs.putBack(job, token);
        return undefined;
      }
      if (failure instanceof LocationPaused) {
        lane.paused = true;
        await lane.jobs.putBack(job, token);
        return undefined;
      }
      if (failure instanceof WorkerStopping) {
        await lane.jobs.putBack(job, token);
        return undefined;
      }
      if (failure instanceof RetryLater) {
        // This message alone goes later, costing no attempt; the location's others go on.
        await lane.jobs.putOff(job, Date.now() + Math.max(1, Math.ceil(failure.delayMs)), token);
        return fetchNext ? await this.#fetch(lane, token) : undefined;
      }
      const error = failure instanceof Error ? failure : coerceError(failure);
      const next = await lane.jobs.fail(job, error, token, fetchNext);
      // A job that failed for good without the processor dead-lettering it (an unexpected error
      // on its last attempt) is recorded here, so that nothing leaves without a trace.
      if (job.finishedOn !== undefined && !isDeadLettered(error)) await this.#recordFailed(lane.lease.locationId, job);
      return this.#taken(lane, next);
    } catch (error) {
      // The lock was lost (the job stalled and another worker took it), or Redis failed: the
      // job's lock expires and the stalled-job check gives it back.
      this.#log.warn({ err: coerceError(error), locationId: lane.lease.locationId, jobId: id }, 'could not move a job on');
      return undefined;
    }
  }

  /** Whether a loop retires after its job: the lane has loops spawned for live messages beyond its cap. */
  #retires(lane: Lane): boolean {
    if (lane.extra === 0) return false;
    lane.extra -= 1;
    return true;
  }

  /** The turn is over: tell the ready set when the location is next due. */
  async #endLane(lane: Lane): Promise<void> {
    if (this.#lanes.get(lane.lease.locationId) !== lane) return;
    this.#lanes.delete(lane.lease.locationId);
    let end: TurnEnd;
    try {
      await this.#renewals.release(lane);
      if (lane.waitMs !== undefined) end = { mode: 'wait', ms: lane.waitMs, ...(lane.checked ? { check: true } : {}) };
      else if (!lane.exhausted && !lane.paused) end = { mode: 'turn' };
      else if (lane.paused) end = { mode: 'idle' };
      else end = await this.#idleEnd(lane);
      // Nothing is in flight now (every loop has ended): the next holder may trust the log as saved.
      const budget = await lane.budget.catch(() => undefined);
      if (budget !== undefined)
        await this.#o.budgets
          .close(budget)
          .catch((error: unknown) => this.#log.warn({ err: coerceError(error), locationId: lane.lease.locationId }, 'could not save a budget'));
      await this.#o.state.endLease(lane.lease, end);
    } catch (error) {
      // The lease ends by itself and the location becomes due again.
      this.#log.warn({ err: coerceError(error), locationId: lane.lease.locationId }, 'could not end a turn');
    } finally {
      lane.finish();
    }
  }

  /**
   * Nothing left to take: due again at the next retry, or after a stalled-job interval while jobs
   * of a process that died are still active, else dropped until producers add more.
   */
  async #idleEnd(lane: Lane): Promise<TurnEnd> {
    const backlog = await lane.jobs.backlog(this.#o.connection);
    // A retry whose time came between the last fetch and now was moved to the wait list by
    // BullMQ's own promotion: the location has work after all.
    if (backlog.waiting > 0) return { mode: 'turn' };
    // Jobs active, none of them ours: a process that died holds them until BullMQ's stalled-job
    // check (run by the location's next holder, a lock period from now) gives them back.
    if (backlog.active > 0) return { mode: 'check', ms: this.#o.lockMs };
    if (backlog.nextRetryAt !== undefined) return { mode: 'idle', ms: Math.max(0, backlog.nextRetryAt - Date.now()) };
    return { mode: 'idle' };
  }

  /** BullMQ's stalled-job check, for a location this process now holds: jobs of a dead process come back. */
  async #checkStalled(lane: Lane): Promise<void> {
    lane.checked = true;
    try {
      const stalled = await lane.jobs.checkStalled();
      if (stalled.length === 0) return;
      this.#log.warn({ locationId: lane.lease.locationId, jobs: stalled.length }, 'jobs of a stopped worker taken again');
      for (const jobId of stalled) {
        const job = await lane.jobs.failedJob(jobId);
        if (job !== undefined) await this.#recordFailed(lane.lease.locationId, job);
      }
    } catch (error) {
      this.#log.warn({ err: coerceError(error), locationId: lane.lease.locationId }, 'stalled-job check failed');
    }
  }

  /** Another process holds the location now: this one sends nothing more for it, and its jobs are abandoned. */
  #lose(lane: Lane, why: string): void {
    if (lane.lost) return;
    lane.lost = true;
    for (const job of lane.active.values()) job.lost.abort();
    this.#log.warn({ locationId: lane.lease.locationId }, why);
  }

  async #recordFailed(locationId: string, job: Job): Promise<void> {
    try {
      const parsed = jobDataSchema.safeParse(job.data);
      const record: Omit<DeadLetterRecord, 'v' | 'id'> = {
        locationId,
        key: parsed.success ? parsed.data.key : String(job.id),
        job: parsed.success ? parsed.data : undefined,
        ...(parsed.success ? {} : { raw: job.data }),
        class: 'stalled',
        reason: `failed outside delivery: ${job.failedReason}`,
        attempts: job.attemptsMade,
        firstAttemptAt: job.processedOn ?? job.timestamp,
        lastAttemptAt: job.finishedOn ?? Date.now(),
        worker: this.#workerName,
      };
      if (await this.#o.deadLetters.write(record)) await this.#o.notify?.(deadLetterAdded(record));
      // Recorded: the copy in BullMQ's failed set has nothing more to tell.
      await job.remove();
    } catch (error) {
      this.#log.error({ err: coerceError(error), locationId, jobId: job.id }, 'could not dead-letter a failed job');
    }
  }

  /** The location's jobs: its cached queue object (the process's one connection), moved by this process. */
  #jobsOf(locationId: string): LocationJobs {
    return new LocationJobs(this.#queues.get(locationId), this.#workerName);
  }
}
