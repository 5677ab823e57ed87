/**
 * `ingest auth`: a marketplace app's OAuth tokens in the shared encrypted store.
 * - `import <file|->`: JSON lines, `{"locationId","refreshToken","accessToken"?,"expiresAt"?}` or
 *   `{"companyId","refreshToken"}`; each bad line reported with its number and why, never with its
 *   content (it holds secrets); exit codes as for `import` (0, 1, 2).
 * - `status [--json]`: per location and agency, where its token comes from, expiry, last refresh,
 *   refreshes, failures, and why it cannot be used; never a secret.
 * - `remove <id>`: a location's or an agency's record and tokens.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { ConfigError, openOAuthStore, type Config, type OAuthStore, type OAuthOwner, type OAuthRecordInfo, type RedisClient } from '@ghl-ingest/queue';
import { locationIdSchema } from '@ghl-ingest/schema';
import { z } from 'zod';
import { columns, duration } from './status.ts';

const id = locationIdSchema;
const secret = z.string().trim().min(1, 'must not be empty').max(4096, 'is over 4,096 characters');
const line = z.union([
  z.strictObject({ locationId: id, refreshToken: secret, accessToken: secret.optional(), expiresAt: z.iso.datetime({ offset: true }).optional() }),
  z.strictObject({ companyId: id, refreshToken: secret }),
]);

/** The store, opened with GHL_TOKEN_KEY; says plainly when it is missing. */
export function authStore(redis: RedisClient, config: Config): OAuthStore {
  const store = openOAuthStore(redis, config);
  if (store === undefined) {
    throw new ConfigError(
      'GHL_TOKEN_KEY is not set: OAuth tokens are kept encrypted with it (make one: openssl rand -base64 32, and give every worker the same)',
    );
  }
  return store;
}

export interface AuthImportSummary {
  locations: number;
  companies: number;
  rejected: number;
}

/** Imports JSON lines from a file or standard input (`-`); bad lines go to `report`, by number. */
export async function importAuth(store: OAuthStore, source: string, report: (text: string) => void): Promise<AuthImportSummary> {
  const input = source === '-' ? process.stdin : createReadStream(source);
  const summary: AuthImportSummary = { locations: 0, companies: 0, rejected: 0 };
  let n = 0;
  for await (const text of createInterface({ input, crlfDelay: Infinity })) {
    n += 1;
    if (text.trim() === '') continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // JSON.parse quotes the text around the error: it may be a token, so only the line is named.
      summary.rejected += 1;
      report(`line ${n}: not valid JSON`);
      continue;
    }
    const parsed = line.safeParse(json);
    if (!parsed.success) {
      summary.rejected += 1;
      // Field names and what is wrong with them, never the values.
      report(`line ${n}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'the line'} ${describeIssue(i)}`).join('; ')}`);
      continue;
    }
    const record = parsed.data;
    if ('locationId' in record) {
      const expiresAt = record.expiresAt === undefined ? undefined : Date.parse(record.expiresAt);
      await store.put({ kind: 'location', id: record.locationId }, { refreshToken: record.refreshToken, accessToken: record.accessToken, expiresAt });
      summary.locations += 1;
    } else {
      await store.put({ kind: 'company', id: record.companyId }, { refreshToken: record.refreshToken });
      summary.companies += 1;
    }
  }
  return summary;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `has unknown field(s) ${issue.keys.join(', ')}`;
  if (issue.code === 'invalid_union') return 'must be {"locationId","refreshToken","accessToken"?,"expiresAt"?} or {"companyId","refreshToken"}';
  return issue.message;
}

/** Removes a location's (else an agency's) record; says which, or that there was none. */
export async function removeAuth(store: OAuthStore, owner: string): Promise<OAuthOwner | undefined> {
  for (const candidate of [
    { kind: 'location', id: owner },
    { kind: 'company', id: owner },
  ] as const) {
    if (await store.remove(candidate)) return candidate;
  }
  return undefined;
}

/** `auth status` as text: one line per record, no secret. */
export function renderAuthStatus(records: OAuthRecordInfo[], now = Date.now()): string {
  if (records.length === 0) return 'no OAuth tokens stored (add some with: ingest auth import <file|->)\n';
  const rows = records.map((r) => [
    `${r.owner.kind === 'company' ? 'agency' : 'location'} ${r.owner.id}`,
    r.source === 'from-company' ? `via agency ${r.companyId ?? '?'}` : r.source === 'company' ? 'agency token' : 'own token',
    r.expiresAt === 0 ? 'no access token yet' : r.expiresAt <= now ? `expired ${ago(now - r.expiresAt)} ago` : `expires in ${ago(r.expiresAt - now)}`,
    r.refreshedAt === undefined ? 'never refreshed' : `refreshed ${ago(now - r.refreshedAt)} ago (${r.refreshes} in all)`,
    state(r, now),
  ]);
  return `${columns(rows).join('\n')}\n`;
}

function state(r: OAuthRecordInfo, now: number): string {
  if (r.revoked !== undefined) return `PAUSED: ${r.revoked}`;
  if (r.refreshing) return 'refreshing now';
  if (r.retryAt > now) return `refresh failing (${r.failures}x, next try in ${ago(r.retryAt - now)}): ${r.lastError ?? ''}`;
  return 'ok';
}

function ago(ms: number): string {
  return duration(Math.round(ms / 1000));
}
