/** What a job of a location this process holds is processed with (the dispatcher's lane gives it, the delivery uses it). */
import type { HeldBudget } from '@ghl-ingest/queue';

export interface LocationTurn {
  /** The location's budget, in this process's memory while it holds the location. */
  readonly budget: HeldBudget;
  /** False once the lease may have ended (its renewal failed, or is overdue: the process paused). */
  holds(): boolean;
}
