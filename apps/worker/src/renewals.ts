/**
 * What a worker process holds, kept held: every half lock, the locks of its active jobs and the
 * leases of its locations are renewed, and each location's budget is saved with its lease, as
 * BullMQ's LockManager renews a worker's locks. A job whose lock could not be renewed is abandoned
 * (its processing is told, and posts nothing more; the job is the next holder's); a location whose
 * lease or budget another process holds now is lost (it sends nothing more, and its turn ends).
 */
import { coerceError, processClock, type Budgets, type HeldBudget, type Lease, type Logger, type WorkerLocations } from '@ghl-ingest/queue';
import type { LocationJobs } from './location-jobs.ts';

/** What Renewals keeps held of one location. */
export interface Holding {
  lease: Lease;
  jobs: LocationJobs;
  /** Job id -> lock token, and what aborts when the lock is lost, of jobs active here. */
  active: Map<string, { token: string; lost: AbortController }>;
  /** This process's clock when the lease surely ends (processClock): the last claim's or renewal's send, plus the lease. */
  leaseBound: number;
  /** The location's budget for this turn (once loaded). */
  budget: Promise<HeldBudget>;
}

export interface RenewalsOptions {
  state: Pick<WorkerLocations, 'renewLease'>;
  budgets: Pick<Budgets, 'save'>;
  /** Lock and lease length (ms): renewed at half of it. */
  lockMs: number;
  logger: Logger;
  /** What the process holds now. */
  holdings: () => Iterable<Holding>;
  /** Another process holds the location now (its lease, or its budget). */
  onLost: (holding: Holding, why: string) => void;
}

export class Renewals {
  readonly #o: RenewalsOptions;
  #timer: NodeJS.Timeout | undefined;
  /** Renewals under way, by holding. */
  readonly #renewing = new Map<Holding, Promise<void>>();
  /** Holdings whose turn is ending: not renewed again. */
  readonly #released = new WeakSet<Holding>();

  constructor(options: RenewalsOptions) {
    this.#o = options;
  }

  start(): void {
    this.#timer = setInterval(() => void this.renewAll(), Math.max(250, this.#o.lockMs / 2));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async renewAll(): Promise<void> {
    for (const h of this.#o.holdings()) {
      if (this.#released.has(h)) continue;
      const renewal = this.#renew(h);
      this.#renewing.set(h, renewal);
      await renewal;
      this.#renewing.delete(h);
    }
  }

  /**
   * The holding's turn ends: it is not renewed again, and a renewal under way finishes first. Its
   * save of the budget (open: still held) must land before the turn's own (closed): landing after
   * it, it left the budget open, and the next holder took that for a holder that lapsed and waited
   * for it (about 50 s at HighLevel's limits).
   */
  async release(h: Holding): Promise<void> {
    this.#released.add(h);
    await this.#renewing.get(h);
  }

  async #renew(h: Holding): Promise<void> {
    const locationId = h.lease.locationId;
    try {
      if (h.active.size > 0) {
        const ids = [...h.active.keys()];
        const failed = await h.jobs.extendLocks(
          ids,
          ids.map((id) => h.active.get(id)?.token ?? ''),
          this.#o.lockMs,
        );
        for (const id of failed) {
          const job = h.active.get(id);
          if (job === undefined) continue;
          job.lost.abort();
          this.#o.logger.warn({ locationId, jobId: id }, 'lock renewal failed: job abandoned');
        }
      }
      const sent = processClock();
      if (!(await this.#o.state.renewLease(h.lease, this.#o.lockMs))) {
        this.#o.onLost(h, 'lease taken by another process: nothing more is sent');
        return;
      }
      h.leaseBound = sent + this.#o.lockMs;
      if (!(await this.#o.budgets.save(await h.budget, Number(h.lease.lease)))) this.#o.onLost(h, 'budget taken by another process: nothing more is sent');
    } catch (error) {
      this.#o.logger.warn({ err: coerceError(error), locationId }, 'could not renew locks');
    }
  }
}
