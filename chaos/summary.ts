/**
 * The chaos suite's summary: each scenario appends its figures (accounting.ts `record`); once the
 * suite ends they are printed as one table, and the file stays for CI to show again.
 */
import { readFileSync, rmSync } from 'node:fs';
import { SUMMARY_FILE, type Figures } from './accounting.ts';

export function setup(): void {
  rmSync(SUMMARY_FILE, { force: true });
}

export function teardown(): void {
  let rows: Figures[];
  try {
    rows = readFileSync(SUMMARY_FILE, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Figures);
  } catch {
    return;
  }
  process.stdout.write(`\n${formatSummary(rows)}\n`);
}

export function formatSummary(rows: Figures[]): string {
  const head = ['scenario', 'messages', 'delivered', 'dead', 'rejected', 'lost', 'dupes', 'unanswered', 'kills', 'redis restarts', '429s', 's'];
  const body = rows.map((r) =>
    [
      r.scenario,
      r.messages,
      r.delivered,
      r.deadLettered,
      r.rejected,
      r.lost,
      r.duplicates,
      r.unanswered,
      r.kills,
      r.redisRestarts,
      r.rateLimited,
      r.seconds,
    ].map(String),
  );
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  const total = (f: (r: Figures) => number) => rows.reduce((s, r) => s + f(r), 0);
  const notes = rows.filter((r) => r.note !== undefined).map((r) => `  ${r.scenario}: ${r.note ?? ''}`);
  return [
    'chaos summary (dupes: extra copies HighLevel recorded; unanswered: accepted copies whose answer never reached a worker)',
    line(head),
    ...body.map(line),
    `totals: ${total((r) => r.messages)} messages, ${total((r) => r.kills)} kills, ${total((r) => r.redisRestarts)} Redis restarts, ` +
      `${total((r) => r.duplicates)} duplicates, ${total((r) => r.lost)} lost`,
    ...(notes.length > 0 ? ['notes:', ...notes] : []),
  ].join('\n');
}
