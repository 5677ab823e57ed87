/** What the chaos scenarios share: a cluster per test, stopped after it; waiting; the closing checks. */
import { until as waitUntil } from '@ghl-ingest/testing';
import { afterEach, expect } from 'vitest';
import { account, balanced, figuresOf, record, scanForSecrets, type Accounting, type Dataset, type Figures } from './accounting.ts';
import { Cluster, type ClusterOptions } from './cluster.ts';

export function useCluster(): (options: ClusterOptions) => Promise<Cluster> {
  let current: Cluster | undefined;
  afterEach(async () => {
    await current?.stop();
    current = undefined;
  });
  return async (options) => {
    current = await Cluster.start(options);
    return current;
  };
}

/** Waits for a condition, polling every 50 ms (each poll may ask the stand-in over HTTP). */
export async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  await waitUntil(check, timeoutMs, what, 50);
}

/**
 * The end of every scenario: the accounting balances (rows in = delivered + dead-lettered +
 * rejected, nothing lost, every ledger entry names a message the stand-in holds), workers stop
 * cleanly on SIGTERM, and no secret is in Redis, the logs, the dead letters or /metrics.
 * Records the figures and returns the accounting for the scenario's own checks.
 */
export async function closeScenario(
  cluster: Cluster,
  datasets: Dataset[],
  rejected: number,
  figures: { scenario: string; started: number } & Partial<Figures>,
  /** Messages a scenario may lose by design (what `everysec` documents); any other loss fails. */
  mayLose: (id: string) => boolean = () => false,
  /** Messages not at the stand-in because they wait in a paused location's queue (checked by the scenario): not counted as lost. */
  waiting: (id: string) => boolean = () => false,
): Promise<Accounting> {
  const metrics = await Promise.all(
    cluster.workers().map(async (w) => {
      const res = await fetch(`${await cluster.adminUrl(w)}/metrics`);
      return res.text();
    }),
  );
  const a = await account(cluster, datasets, rejected);
  const { scenario, started, ...extra } = figures;
  record(figuresOf(scenario, { ...a, lost: a.lost.filter((id) => !waiting(id)) }, { ...extra, seconds: Math.round((Date.now() - started) / 1000) }));
  expect(
    a.lost.filter((id) => !mayLose(id) && !waiting(id)),
    'messages neither delivered nor dead-lettered',
  ).toEqual([]);
  expect(a.ledgerUnknown, 'ledger entries the stand-in cannot confirm').toEqual([]);
  expect(balanced(a), `rows in ${a.rowsIn} = delivered ${a.delivered} + dead ${a.deadLettered} + rejected ${a.rejected} + lost ${a.lost.length}`).toBe(true);
  const running = cluster.workers().length;
  expect(await cluster.stopWorkers(), 'workers exit 0 on SIGTERM').toEqual(Array.from({ length: running }, () => 0));
  const scan = await scanForSecrets(cluster, metrics);
  expect(scan.findings).toEqual([]);
  expect(scan.keys).toBeGreaterThan(0);
  expect(scan.logLines).toBeGreaterThan(0);
  return a;
}

/** Ledger entries the workers wrote back after Redis came back without them (as their logs say). */
export function writtenBackBy(c: Cluster): number {
  return c.workerLogs('entries this process wrote lately').reduce((n, r) => n + Number(r.written ?? 0), 0);
}
