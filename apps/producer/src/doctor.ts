/**
 * `ingest doctor [--json] [--api]`: checks a deployment and says how to fix each finding. The
 * facts are gathered in doctor/gather.ts (the only part that talks to Redis, the file system and
 * HighLevel) and judged by pure policies (doctor/redis-policy.ts, doctor/token-policy.ts); this
 * module orders, renders and scores them. Exit codes (contract.md): 0 when nothing blocks, 1
 * otherwise. No secret is printed: tokens are present or absent, scopes are names.
 */
import { loadConfig } from '@ghl-ingest/queue';
import type { DoctorFacts, Finding, Severity } from './doctor/facts.ts';
import { apiFindings, clockFindings, redisFindings } from './doctor/redis-policy.ts';
import { oauthFindings, tokenFindings } from './doctor/token-policy.ts';

export type { DoctorFacts, Finding, Severity } from './doctor/facts.ts';

/** Every finding, in the order they are shown: Redis, clocks, tokens, OAuth, the API. */
export function diagnose(f: DoctorFacts): Finding[] {
  return [
    ...redisFindings(f.redis),
    ...clockFindings(f.redis, f.api),
    ...tokenFindings(f.tokens, f.now),
    ...oauthFindings(f.tokens, f.now),
    ...apiFindings(f.api),
  ];
}

/** 0 when nothing blocks, 1 otherwise. */
export function exitCodeOf(findings: readonly Finding[]): 0 | 1 {
  return findings.some((x) => x.status === 'blocker') ? 1 : 0;
}

export interface DoctorSummary {
  ok: number;
  warning: number;
  blocker: number;
  exitCode: 0 | 1;
}

export function summarize(findings: readonly Finding[]): DoctorSummary {
  const count = (s: Severity) => findings.filter((x) => x.status === s).length;
  return { ok: count('ok'), warning: count('warning'), blocker: count('blocker'), exitCode: exitCodeOf(findings) };
}

const AREAS: Record<string, string> = { redis: 'Redis', clock: 'Clocks', tokens: 'Tokens', oauth: 'OAuth', api: 'HighLevel API' };
const MARKS: Record<Severity, string> = { ok: '✓', warning: '!', blocker: '✗' };

/** The findings for people: grouped by area, a mark per line, the fix under each that has one, a summary. */
export function renderFindings(findings: readonly Finding[], heading: string): string {
  const lines = [heading];
  let area: string | undefined;
  const width = Math.max(...findings.map((x) => nameOf(x.check).length));
  for (const x of findings) {
    const here = areaOf(x.check);
    if (here !== area) {
      lines.push('', AREAS[here] ?? here);
      area = here;
    }
    lines.push(`  ${MARKS[x.status]} ${nameOf(x.check).padEnd(width)}  ${x.detail}`);
    if (x.fix !== undefined) lines.push(`  ${' '.repeat(width + 4)}fix: ${x.fix}`);
  }
  const s = summarize(findings);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  lines.push(
    '',
    `${plural(s.blocker, 'blocker')}, ${plural(s.warning, 'warning')}, ${s.ok} ok: ${s.exitCode === 0 ? 'nothing blocks' : 'fix the blockers (✗) first'}`,
  );
  return `${lines.join('\n')}\n`;
}

function areaOf(check: string): string {
  return check.split('.')[0] ?? check;
}

function nameOf(check: string): string {
  return check.slice(areaOf(check).length + 1);
}

export interface DoctorFlags {
  json?: boolean;
  api?: boolean;
}

/** The command: settings from the environment, facts gathered, judged and written to `out`; returns the exit code. */
export async function doctorCommand(flags: DoctorFlags, out: NodeJS.WritableStream): Promise<0 | 1> {
  const config = loadConfig();
  const { gatherFacts } = await import('./doctor/gather.ts');
  const facts = await gatherFacts(config, { api: flags.api === true });
  const findings = diagnose(facts);
  if (flags.json === true) out.write(`${JSON.stringify({ findings, summary: summarize(findings) }, null, 2)}\n`);
  else out.write(renderFindings(findings, `ghl-ingest doctor: ${facts.redis.where}, QUEUE_PREFIX ${config.queuePrefix}`));
  return exitCodeOf(findings);
}
