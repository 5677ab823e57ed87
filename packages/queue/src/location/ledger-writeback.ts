/**
 * The delivery ledger's write-back after Redis lost writes it acknowledged. Owns this process's
 * memory of its recent ledger writes (RecentDeliveries), the retries of ledger writes that failed,
 * the writers' beats (keys `{writers}` and `{writers}:restored:<runId>`, scripts
 * `commands/writers-beat.lua` and `writers-pending.lua`), and the gate every ledger read waits at
 * (`readable()`) until what Redis may have lost is written back by every worker. The entry's
 * format and key are `ledger.ts`'s and `keys.ts`'s.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { mixesSlots, redisRunId, type RedisClient } from '../connection.ts';
import { keysFor, type Keys } from '../keys.ts';
import { formatLedgerEntry } from '../ledger.ts';
import { defineScripts } from '../scripts.ts';
import { RecentDeliveries, type RecentDelivery } from './recent-deliveries.ts';

/**
 * How much of this process's own ledger writes it keeps to write back after Redis lost writes:
 * the last 30 s of deliveries (an `everysec` AOF loses about one; a cluster's replicas lag less;
 * a failover is noticed within 10 s), at most 50,000 entries (about 10 MB).
 */
const RECENT_KEEP_MS = 30_000;
const RECENT_MAX = 50_000;

/**
 * After Redis lost writes, every worker alive lately may remember ledger entries it lost, and each
 * writes back only its own: no worker reads the ledger until all of them have (or are presumed
 * gone). A worker says it is alive every WRITER_BEAT_MS (one script of five commands: an idle
 * worker's Redis cost); one not heard from for WRITER_ALIVE_MS is gone (a worker reconnects within
 * 2 s of Redis coming back); one that has not written back within PEERS_WAIT_MS of this worker's
 * own write-back is not waited for longer.
 */
const WRITER_BEAT_MS = 5_000;
const WRITER_ALIVE_MS = 15_000;
const WRITER_FORGET_MS = 600_000;
const PEERS_WAIT_MS = 15_000;
const RESTORED_TTL_S = 7 * 24 * 3600;
/**
 * How long a write-back that fails (a master that still answers CLUSTERDOWN, Redis away again) is
 * tried again while ledger reads wait; past that, the next check starts over.
 */
const RETRY_RESTORE_MS = 10_000;

export interface WriterKeys {
  /** ZSET: worker id -> when it last said it was alive (Redis time, ms): who may remember ledger entries Redis lost. */
  writers: string;
  /** SET: the workers that wrote their remembered ledger entries back to the Redis run `runId`. */
  restored(runId: string): string;
}

export function writerKeys(prefix: string): WriterKeys {
  // One slot for both: their script reads them together.
  return { writers: `${prefix}:{writers}`, restored: (runId) => `${prefix}:{writers}:restored:${runId}` };
}

/** What a worker did after Redis came back as another server. */
export interface RestoreReport {
  /** Ledger entries this process remembered that Redis had lost, written back. */
  written: number;
  /** How long it waited for the other workers to write theirs back. */
  waitedMs: number;
  /** Workers alive before the loss that had not written back when it stopped waiting (presumed gone). */
  notRestored: number;
}

export class LedgerWriteBack {
  readonly #redis: RedisClient;
  readonly #keys: Keys;
  readonly #writerKeys: WriterKeys;
  readonly #ttlMs: number;
  /** Ledger entries this process wrote lately: written back when Redis comes back having lost writes. */
  readonly #recent = new RecentDeliveries(RECENT_KEEP_MS, RECENT_MAX);
  /** Ledger writes that failed and are retried until they land (see #recordWhenPossible). */
  readonly #recording = new Set<Promise<void>>();
  /** The Redis run id(s) this process last saw: a new one means a restart or a failover. */
  #seenRunId: string | undefined;
  /** Set while Redis is away and until what it lost is written back: the ledger is not read meanwhile. */
  #restoring: Promise<void> | undefined;
  #onRestored: ((report: RestoreReport) => void) | undefined;
  #writingBack: Promise<void> | undefined;
  /**
   * Entries written back since Redis was last seen as itself, over every attempt: one that fails
   * part way (a cluster whose other masters still answer CLUSTERDOWN) has written some already,
   * and the attempt that completes finds those there. Reported, then reset, once one completes.
   */
  #writtenBack = 0;
  /** This process among the workers that may remember ledger entries (see WRITER_BEAT_MS). */
  readonly #writerId = randomUUID();
  /** The workers alive at this process's last beat: waited for after a loss even if Redis lost them too. */
  #peers: string[] = [];
  /** Says this process is alive now (set while watching for loss). */
  #beat: (() => void) | undefined;

  /** `ledgerTtlMs`: how long ledger entries live (GHL_LEDGER_TTL_DAYS), for those written back. */
  constructor(redis: RedisClient, prefix: string, ledgerTtlMs: number) {
    this.#redis = redis;
    this.#keys = keysFor(prefix);
    this.#writerKeys = writerKeys(prefix);
    this.#ttlMs = ledgerTtlMs;
    defineScripts(redis);
  }

  /** The Redis run id(s) this process last saw (undefined until it knows). */
  get runId(): string | undefined {
    return this.#seenRunId;
  }

  /** Resolves once the ledger may be read: not while Redis is away, nor before what it lost is written back, by every worker. */
  async readable(): Promise<void> {
    if (this.#restoring !== undefined) await this.#restoring;
    if (this.#writingBack !== undefined) await this.#writingBack;
  }

  /**
   * Runs `write` (the call that writes the ledger entry `delivered`, with whatever else it does).
   * HighLevel has the message whether or not that call lands, so the entry is remembered first;
   * should Redis fail the call (a cluster failing over, say), the job will be taken again and its
   * entry must be there by then: it is written on its own as soon as Redis takes it.
   */
  async writing<T>(delivered: RecentDelivery | undefined, write: () => Promise<T>): Promise<T> {
    if (delivered !== undefined) this.#recent.add(delivered);
    try {
      return await write();
    } catch (error) {
      if (delivered !== undefined) {
        const writing = this.#recordWhenPossible(delivered).finally(() => this.#recording.delete(writing));
        this.#recording.add(writing);
      }
      throw error;
    }
  }

  /**
   * Writes a ledger entry whose settle failed, for as long as this process lives (every 5 s at
   * most once Redis keeps failing): HighLevel holds the message, and without its entry the job,
   * taken again, would be posted again. A stopping worker waits for these (`ledgerWrites`).
   */
  async #recordWhenPossible(delivery: RecentDelivery): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      await sleep(Math.min(5_000, 250 * 2 ** Math.min(attempt, 5)));
      try {
        await this.#redis.set(...this.#restoreArgs(delivery));
        return;
      } catch {
        // Still failing over: try again.
      }
    }
  }

  /** Ledger entries whose write failed and is being retried; resolves once every one is written. */
  async ledgerWrites(): Promise<number> {
    const pending = this.#recording.size;
    while (this.#recording.size > 0) await Promise.all([...this.#recording]);
    return pending;
  }

  /**
   * Notices Redis coming back as another server (restarted, perhaps from an AOF that missed its
   * last second; or a cluster master replaced by its replica) and writes this process's recent
   * ledger entries back (those still there are left alone), so the messages they name are not
   * posted twice. Each worker remembers only its own entries, so none reads the ledger again
   * before every worker alive before the loss has written its entries back (or is presumed gone:
   * see WRITER_ALIVE_MS): a worker that reconnected first would otherwise post again what another
   * delivered in the lost second. On one Redis no message is checked against the ledger from the
   * moment the connection drops until that is done; on a cluster the masters are compared when its
   * slots are refreshed, and by `repairAfterLoss`. `onRestored` hears what was written back and how
   * long the others were waited for. Returns a function that stops watching.
   */
  watchForLoss(onRestored?: (report: RestoreReport) => void): () => void {
    this.#onRestored = onRestored;
    const redis = this.#redis;
    const wk = this.#writerKeys;
    const beat = () => {
      const seen = this.#seenRunId;
      redis.ghlWritersBeat(wk.writers, wk.restored(seen ?? ''), this.#writerId, WRITER_ALIVE_MS, seen === undefined ? '0' : '1', RESTORED_TTL_S).then(
        (alive) => {
          // Not while a write-back is under way: what was known before the loss is what counts.
          if (this.#writingBack === undefined && this.#restoring === undefined) this.#peers = alive.filter((id) => id !== this.#writerId);
        },
        () => undefined, // Redis is away: the next beat says it
      );
    };
    this.#beat = beat;
    beat();
    const beating = setInterval(beat, WRITER_BEAT_MS);
    beating.unref();
    const stopBeating = () => {
      clearInterval(beating);
      this.#beat = undefined;
      // Gone on purpose: nobody waits for this process after a loss.
      redis.zrem(wk.writers, this.#writerId).catch(() => undefined);
    };
    const check = () =>
      redisRunId(redis).then(
        (runId) => this.writeBackIfChanged(runId),
        () => undefined, // Redis went away again: the next ready checks
      );
    void check();
    if (!mixesSlots(redis)) {
      // A cluster: its client stays ready through a failover.
      const onRefresh = () => void check();
      redis.on('refresh', onRefresh);
      return () => {
        stopBeating();
        redis.off('refresh', onRefresh);
      };
    }
    let reopened: (() => void) | undefined;
    const onClose = () => {
      if (this.#restoring !== undefined) return;
      this.#restoring = new Promise<void>((resolve) => (reopened = resolve));
    };
    const onReady = () => {
      const release = reopened;
      void check().finally(() => {
        if (release === undefined || reopened !== release) return;
        this.#restoring = undefined;
        reopened = undefined;
        release();
      });
    };
    redis.on('close', onClose);
    redis.on('ready', onReady);
    return () => {
      stopBeating();
      redis.off('close', onClose);
      redis.off('ready', onReady);
      reopened?.();
      this.#restoring = undefined;
    };
  }

  /**
   * Writes the recent ledger entries back if Redis is not the server this process last saw, then
   * waits for the other workers to have written theirs. The new run id counts as seen only once
   * every entry was written (or found there). A write that fails (a master still down, Redis gone
   * again) is tried again shortly, for up to RETRY_RESTORE_MS, and ledger reads wait meanwhile:
   * a read there could miss an entry not yet written back, and post its message again.
   */
  async writeBackIfChanged(runId: string): Promise<void> {
    if (runId === '' || runId === this.#seenRunId) return;
    // One write-back at a time; a check meanwhile waits for it (and then finds the id seen).
    this.#writingBack ??= this.#restoreRetrying(runId).finally(() => (this.#writingBack = undefined));
    await this.#writingBack;
  }

  async #restoreRetrying(runId: string): Promise<void> {
    const started = Date.now();
    for (let attempt = 1; !(await this.#restore(runId)) && Date.now() - started < RETRY_RESTORE_MS; attempt += 1)
      await sleep(Math.min(1_000, 100 * attempt), undefined, { ref: false });
  }

  /** One write-back and wait for the others; whether it is done (else it is tried again). */
  async #restore(runId: string): Promise<boolean> {
    // The first run id this process sees: it remembers nothing Redis could have lost, but another
    // worker may still be writing back what it remembers.
    const first = this.#seenRunId === undefined;
    if (!first && this.#recent.size > 0 && !(await this.#writeBack())) return false;
    const started = Date.now();
    let pending: string[];
    try {
      const peers = first ? [] : this.#peers;
      const wk = this.#writerKeys;
      const ask = (me: string) =>
        this.#redis.ghlWritersPending(wk.writers, wk.restored(runId), me, WRITER_ALIVE_MS, RESTORED_TTL_S, WRITER_FORGET_MS, ...peers);
      pending = await ask(this.#writerId);
      while (pending.length > 0 && Date.now() - started < PEERS_WAIT_MS) {
        await sleep(50, undefined, { ref: false });
        pending = await ask('');
      }
    } catch {
      return false; // Redis went away again
    }
    this.#seenRunId = runId;
    const written = this.#writtenBack;
    this.#writtenBack = 0;
    this.#beat?.(); // the peers as they are now, for the next loss
    if (!first) this.#onRestored?.({ written, waitedMs: Date.now() - started, notRestored: pending.length });
    return true;
  }

  /**
   * Writes this process's recent ledger entries back, counting those that were missing (in
   * #writtenBack, also when another write fails); whether every write landed (or found its entry).
   */
  async #writeBack(): Promise<boolean> {
    let failed = 0;
    // One pipeline per location: its keys share a slot.
    await Promise.all(
      [...this.#recent.byLocation().values()].map(async (deliveries) => {
        const p = this.#redis.pipeline();
        for (const d of deliveries) p.set(...this.#restoreArgs(d));
        const replies = (await p.exec().catch(() => null)) ?? deliveries.map(() => [new Error('not sent'), null] as const);
        for (const [error, reply] of replies) {
          if (error !== null) failed += 1;
          else if (reply === 'OK') this.#writtenBack += 1;
        }
      }),
    );
    return failed === 0;
  }

  /** SET arguments that write a ledger entry again, unless it is there (it was, or settle wrote it meanwhile). */
  #restoreArgs({ locationId, key, entry }: RecentDelivery): [string, string, 'PX', number, 'NX'] {
    return [this.#keys.ledger(locationId, key), formatLedgerEntry(entry), 'PX', this.#ttlMs, 'NX'];
  }
}
