/**
 * What every chaos scenario ends with: the accounting check (rows in = delivered + dead-lettered +
 * rejected, with every delivery the product recorded found at the stand-in, and duplicates at the
 * stand-in counted), the secrets scan, and one line of figures for the suite's summary.
 */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { keysFor, mixesSlots, parseLedgerEntry, scanEvery } from '@ghl-ingest/queue';
import { idempotencyKey } from '@ghl-ingest/schema';
import { PREFIX, type Cluster } from './cluster.ts';

/** Messages a scenario sends: what the stand-in should end up holding. */
export interface Dataset {
  /** The NDJSON file (for imports). */
  file: string;
  rows: number;
  /** Valid rows: altId → locationId. */
  valid: Map<string, string>;
  /** Rows the schema must reject. */
  invalid: number;
}

/**
 * `rows` messages over `locations` (SMS and Email, each with an altId), every `invalidEvery`-th
 * row invalid (no contact or conversation: the importer must reject it, with its line).
 */
export function writeDataset(dir: string, name: string, rows: number, locations: string[], invalidEvery = 50): Dataset {
  const valid = new Map<string, string>();
  let invalid = 0;
  const lines: string[] = [];
  for (let i = 1; i <= rows; i += 1) {
    const locationId = locations[i % locations.length] as string;
    const altId = `${name}-${i}`;
    if (i % invalidEvery === 0) {
      invalid += 1;
      lines.push(JSON.stringify({ locationId, type: 'SMS', message: `row ${i} has no contact`, altId }));
      continue;
    }
    valid.set(altId, locationId);
    const date = new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString();
    lines.push(
      JSON.stringify(
        i % 3 === 0
          ? { locationId, type: 'Email', contactId: `contact-${i % 97}`, subject: `Re: order ${i}`, html: `<p>chaos ${i}</p>`, altId, date }
          : { locationId, type: 'SMS', contactId: `contact-${i % 97}`, message: `chaos message ${i}`, altId, date },
      ),
    );
  }
  const file = join(dir, `${name}.ndjson`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return { file, rows, valid, invalid };
}

export interface Accounting {
  rowsIn: number;
  rejected: number;
  /** Distinct messages at the stand-in. */
  delivered: number;
  deadLettered: number;
  /** Valid messages neither at the stand-in nor dead-lettered: must be none. */
  lost: string[];
  /** Dead-lettered although the stand-in holds them (their answer never arrived). */
  deliveredAndDead: string[];
  /** Ledger entries naming a messageId the stand-in never issued for that message: must be none. */
  ledgerUnknown: string[];
  /** Accepted copies beyond the first, at the stand-in. */
  duplicates: number;
  /** Accepted messages whose answer never reached a worker: each can explain one duplicate. */
  unanswered: number;
  rateLimited: number;
}

/** The accounting check over the datasets a scenario sent (`rejected`: rows the importer reported). */
export async function account(cluster: Cluster, datasets: Dataset[], rejected: number): Promise<Accounting> {
  const stats = await cluster.api.stats();
  const received = await cluster.api.messages();
  const seen = new Map<string, Set<string>>(); // location/altId → messageIds issued
  for (const m of received) {
    const id = `${m.locationId}/${m.altId ?? ''}`;
    const ids = seen.get(id) ?? new Set<string>();
    ids.add(m.messageId);
    seen.set(id, ids);
  }
  const dead = new Set((await cluster.deadLetters()).map((d) => `${d.locationId}/${d.job?.body.altId ?? ''}`));
  const lost: string[] = [];
  const deliveredAndDead: string[] = [];
  const ledgerUnknown: string[] = [];
  let rowsIn = 0;
  for (const set of datasets) {
    rowsIn += set.rows;
    const entries = [...set.valid];
    const ledgerKeys = entries.map(([altId, loc]) => keysFor(PREFIX).ledger(loc, idempotencyKey(loc, altId, { altId })));
    // One MGET on one Redis; on a cluster the keys are in many slots, so one GET each.
    const values =
      ledgerKeys.length === 0
        ? []
        : mixesSlots(cluster.client)
          ? await cluster.client.mget(...ledgerKeys)
          : await Promise.all(ledgerKeys.map((k) => cluster.client.get(k)));
    entries.forEach(([altId, loc], i) => {
      const id = `${loc}/${altId}`;
      const atApi = seen.get(id);
      if (atApi === undefined && !dead.has(id)) lost.push(id);
      if (atApi !== undefined && dead.has(id)) deliveredAndDead.push(id);
      const value = values[i];
      if (value !== null && value !== undefined && atApi?.has(parseLedgerEntry(value).messageId) !== true) ledgerUnknown.push(id);
    });
  }
  const delivered = [...seen.keys()].length;
  return {
    rowsIn,
    rejected,
    delivered,
    deadLettered: dead.size,
    lost,
    deliveredAndDead,
    ledgerUnknown,
    duplicates: stats.accepted - delivered,
    unanswered: stats.acceptedUnanswered,
    rateLimited: stats.rateLimited,
  };
}

/**
 * Rows in = delivered + dead-lettered + rejected (+ lost, which the caller checks is none, or only
 * what a scenario may lose by design): every row is in exactly one of them.
 */
export function balanced(a: Accounting): boolean {
  return a.rowsIn === a.delivered + a.deadLettered - a.deliveredAndDead.length + a.rejected + a.lost.length;
}

/** Rejected rows in the importer's rejects report. */
export function countLines(file: string): number {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '').length;
  } catch {
    return 0;
  }
}

/** Where each finding of `secretsIn` was. */
export interface SecretsScan {
  keys: number;
  logLines: number;
  deadLetters: number;
  metricsBytes: number;
  findings: string[];
}

/**
 * Looks for every HighLevel token (and the intake and dashboard secrets) in every Redis key and
 * value, every log line, every dead-letter record and the workers' /metrics.
 */
export async function scanForSecrets(cluster: Cluster, metrics: string[]): Promise<SecretsScan> {
  const secrets = await cluster.secrets();
  const findings: string[] = [];
  const check = (where: string, text: string) => {
    for (const s of secrets) if (text.includes(s)) findings.push(`${where} holds ${s.slice(0, 12)}…`);
  };
  let keys = 0;
  for await (const batch of scanEvery(cluster.client, '*')) {
    for (const key of batch) {
      keys += 1;
      check(`key ${key}`, key);
      check(`value of ${key}`, await dump(cluster, key));
    }
  }
  let logLines = 0;
  for (const file of cluster.logFiles()) {
    const text = readFileSync(file, 'utf8');
    logLines += text.split('\n').length - 1;
    check(`log ${file}`, text);
  }
  const dead = await cluster.deadLetters();
  check('dead-letter records', JSON.stringify(dead));
  let metricsBytes = 0;
  metrics.forEach((m, i) => {
    metricsBytes += m.length;
    check(`/metrics of worker ${i}`, m);
  });
  return { keys, logLines, deadLetters: dead.length, metricsBytes, findings };
}

async function dump(cluster: Cluster, key: string): Promise<string> {
  const r = cluster.client;
  switch (await r.type(key)) {
    case 'string':
      return (await r.get(key)) ?? '';
    case 'hash':
      return JSON.stringify(await r.hgetall(key));
    case 'list':
      return JSON.stringify(await r.lrange(key, 0, -1));
    case 'set':
      return JSON.stringify(await r.smembers(key));
    case 'zset':
      return JSON.stringify(await r.zrange(key, 0, -1, 'WITHSCORES'));
    case 'stream':
      return JSON.stringify(await r.xrange(key, '-', '+'));
    default:
      return '';
  }
}

/** One scenario's figures, for the summary printed at the end of the suite. */
export interface Figures {
  scenario: string;
  messages: number;
  delivered: number;
  deadLettered: number;
  rejected: number;
  lost: number;
  duplicates: number;
  unanswered: number;
  kills: number;
  redisRestarts: number;
  rateLimited: number;
  seconds: number;
  note?: string;
}

export const SUMMARY_FILE = resolve(import.meta.dirname, '../node_modules/.cache/chaos-summary.ndjson');

export function record(figures: Figures): void {
  mkdirSync(dirname(SUMMARY_FILE), { recursive: true });
  appendFileSync(SUMMARY_FILE, `${JSON.stringify(figures)}\n`);
}

export function figuresOf(scenario: string, a: Accounting, extra: Partial<Figures> & { seconds: number }): Figures {
  return {
    scenario,
    messages: a.rowsIn,
    delivered: a.delivered,
    deadLettered: a.deadLettered,
    rejected: a.rejected,
    lost: a.lost.length,
    duplicates: a.duplicates,
    unanswered: a.unanswered,
    kills: 0,
    redisRestarts: 0,
    rateLimited: a.rateLimited,
    ...extra,
  };
}
