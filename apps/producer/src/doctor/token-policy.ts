/**
 * The doctor's policy for tokens and OAuth: which source gives each known location its token (as
 * the worker decides it, apps/worker/src/credentials.ts), and whether OAuth tokens carry the
 * scopes our calls need. Pure; never sees a secret (records carry no token, the file's names only).
 */
import type { OAuthRecordInfo } from '@ghl-ingest/queue';
import { named, type Finding, type Severity, type TokenFacts } from './facts.ts';

/** Where a location's token comes from, as the worker decides it (apps/worker/src/credentials.ts). */
export type TokenSource =
  | { kind: 'file' }
  | { kind: 'oauth'; via: 'own' | 'agency' }
  /** No OAuth record of its own: an agency's token gives it one if the app is installed there, else GHL_TOKEN (if set). */
  | { kind: 'agency-maybe'; fallback: boolean }
  | { kind: 'env' }
  | { kind: 'paused'; reason: string }
  | { kind: 'none' };

/** The source of one location's token: GHL_TOKENS_FILE, else OAuth (its own record, else an agency's), else GHL_TOKEN. */
export function tokenSource(locationId: string, t: TokenFacts, now: number): TokenSource {
  if (t.file.kind === 'read' && t.file.locations.has(locationId)) return { kind: 'file' };
  if (t.oauth.kind === 'read' && t.oauth.refreshes) {
    const records = t.oauth.records;
    const own = records.find((r) => r.owner.kind === 'location' && r.owner.id === locationId);
    if (own !== undefined) {
      if (own.revoked !== undefined) return { kind: 'paused', reason: own.revoked };
      if (own.source === 'from-company') {
        const agency = records.find((r) => r.owner.kind === 'company' && r.owner.id === own.companyId);
        if (agency === undefined) return { kind: 'paused', reason: `its agency ${own.companyId ?? '?'} has no OAuth record` };
        if (agency.revoked !== undefined) return { kind: 'paused', reason: `its agency ${agency.owner.id}: ${agency.revoked}` };
        return { kind: 'oauth', via: 'agency' };
      }
      if (!own.hasRefreshToken && own.expiresAt <= now) return { kind: 'paused', reason: 'no refresh token stored and its access token has expired' };
      return { kind: 'oauth', via: 'own' };
    }
    if (records.some((r) => r.owner.kind === 'company' && r.revoked === undefined)) return { kind: 'agency-maybe', fallback: t.fallback };
  }
  return t.fallback ? { kind: 'env' } : { kind: 'none' };
}

/** The tokens file, and a token for every known location. */
export function tokenFindings(t: TokenFacts, now: number): Finding[] {
  const findings: Finding[] = [];
  if (t.file.kind === 'bad') {
    findings.push({
      check: 'tokens.file',
      status: 'blocker',
      detail: `${t.file.why}: workers refuse to start`,
      fix: 'fix GHL_TOKENS_FILE: a JSON object {"<locationId>": "<token>"} the worker can read',
    });
  } else if (t.file.kind === 'read') {
    findings.push({ check: 'tokens.file', status: 'ok', detail: `GHL_TOKENS_FILE ${t.file.path}: tokens for ${t.file.locations.size} location(s)` });
  }
  if (t.known === undefined) return findings;
  if (!t.known.known) {
    findings.push({
      check: 'tokens.locations',
      status: 'warning',
      detail: `the registry of known locations could not be read (${t.known.why})`,
      fix: 'let this user read keys under QUEUE_PREFIX (ACL ~<QUEUE_PREFIX>*), then run doctor again',
    });
    return findings;
  }
  const known = t.known.value;
  const sources = known.map((id) => ({ id, source: tokenSource(id, t, now) }));
  const anySource = t.fallback || t.file.kind === 'read' || (t.oauth.kind === 'read' && t.oauth.refreshes && t.oauth.records.length > 0);
  if (known.length === 0) {
    findings.push(
      anySource
        ? { check: 'tokens.locations', status: 'ok', detail: 'no location known yet (a location becomes known with its first message)' }
        : {
            check: 'tokens.locations',
            status: 'warning',
            detail: 'no token source is set on this host (GHL_TOKEN, GHL_TOKENS_FILE, or OAuth): workers here would pause every location',
            fix: 'set GHL_TOKENS_FILE or GHL_TOKEN (or GHL_CLIENT_ID, GHL_CLIENT_SECRET and GHL_TOKEN_KEY, with `ingest auth import`) on every worker host',
          },
    );
    return findings;
  }
  const none = sources.filter((s) => s.source.kind === 'none').map((s) => s.id);
  const paused = sources.flatMap((s) => (s.source.kind === 'paused' ? [`${s.id} (${s.source.reason})`] : []));
  const maybe = sources.filter((s) => s.source.kind === 'agency-maybe' && !s.source.fallback).map((s) => s.id);
  const count = (kind: TokenSource['kind']) => sources.filter((s) => s.source.kind === kind).length;
  const tally = [
    { n: count('file'), from: 'GHL_TOKENS_FILE' },
    { n: count('oauth'), from: 'OAuth' },
    { n: sources.filter((s) => s.source.kind === 'agency-maybe' && s.source.fallback).length, from: 'an agency, else GHL_TOKEN' },
    { n: count('env'), from: 'GHL_TOKEN' },
  ]
    .filter((x) => x.n > 0)
    .map((x) => `${x.n} from ${x.from}`)
    .join(', ');
  const of = `${known.length} known location${known.length === 1 ? '' : 's'}`;
  if (none.length > 0) {
    findings.push({
      check: 'tokens.locations',
      status: 'blocker',
      detail: `${none.length} of ${of} have no token on this host: ${named(none)}; their messages wait, paused`,
      fix: 'add them to GHL_TOKENS_FILE, or set GHL_TOKEN, or `ingest auth import` their OAuth tokens (on every worker host)',
    });
  }
  if (paused.length > 0) {
    findings.push({
      check: 'tokens.oauth-revoked',
      status: 'blocker',
      detail: `${paused.length} of ${of} cannot get an OAuth token: ${named(paused)}`,
      fix: 'authorise them again (install the app again, or `ingest auth import` a new refresh token), then `ingest resume <locationId>`',
    });
  }
  if (maybe.length > 0) {
    findings.push({
      check: 'tokens.agency',
      status: 'warning',
      detail: `${maybe.length} of ${of} have no token of their own and get one only if an agency the app is installed in covers them: ${named(maybe)}`,
      fix: '`ingest auth status` after a worker tried them shows which did; `ingest auth import` a token for the others, or set GHL_TOKEN',
    });
  }
  if (none.length === 0 && paused.length === 0 && maybe.length === 0) {
    findings.push({ check: 'tokens.locations', status: 'ok', detail: `every one of ${of} has a token on this host (${tally})` });
  }
  return findings;
}

/** A scope our calls need, what for, and how bad its absence is. */
interface ScopeNeed {
  scope: string;
  for: string;
  status: Severity;
  /**
   * Whose tokens need it: `any` (a location's, and an agency's, whose location tokens carry what
   * it was granted) or an agency's only.
   */
  of: 'any' | 'company';
  /** Needed only with GHL_RECONCILE=on. */
  reconcile?: true;
}

/** HighLevel's scope names (highlevel-api.md; `conversations.write` from HighLevel's scopes list). */
export const SCOPE_NEEDS: readonly ScopeNeed[] = [
  {
    scope: 'conversations/message.write',
    for: 'posting messages and uploading their files (without it every post is refused: 401)',
    status: 'blocker',
    of: 'any',
  },
  {
    scope: 'conversations/message.readonly',
    for: 'looking a message up before posting it again (GHL_RECONCILE=on): without it such a message is posted blind, and may be posted twice',
    status: 'warning',
    of: 'any',
    reconcile: true,
  },
  { scope: 'conversations.readonly', for: "finding a contact's conversation (lookups, file uploads)", status: 'warning', of: 'any' },
  { scope: 'conversations.write', for: 'creating a conversation to upload a local file into', status: 'warning', of: 'any' },
  { scope: 'contacts.write', for: 'finding or creating a contact named by phone or email (POST /contacts/upsert)', status: 'warning', of: 'any' },
  { scope: 'oauth.write', for: "getting location tokens from the agency's (POST /oauth/locationToken)", status: 'blocker', of: 'company' },
];

/** The scopes a record is known to have: its own, else (a location token from its agency) its agency's. */
export function scopesOf(record: OAuthRecordInfo, records: readonly OAuthRecordInfo[]): { scopes: readonly string[]; inherited: boolean } | undefined {
  if (record.scopes !== undefined) return { scopes: record.scopes, inherited: false };
  if (record.source !== 'from-company') return undefined;
  const agency = records.find((r) => r.owner.kind === 'company' && r.owner.id === record.companyId);
  return agency?.scopes === undefined ? undefined : { scopes: agency.scopes, inherited: true };
}

/** The OAuth key, the app's credentials on this host, failing refreshes, and scopes. */
export function oauthFindings(t: TokenFacts, now: number): Finding[] {
  const o = t.oauth;
  if (o.kind === 'off' || o.kind === 'unread') return [];
  if (o.kind === 'bad-key')
    return [
      {
        check: 'oauth.key',
        status: 'blocker',
        detail: o.why,
        fix: 'set GHL_TOKEN_KEY to the 32-byte base64 key the tokens were sealed with (the same on every host)',
      },
    ];
  if (o.records.length === 0) {
    return [{ check: 'oauth.records', status: 'ok', detail: 'no OAuth tokens stored (`ingest auth import`, or installs through `ingest serve`, add them)' }];
  }
  const findings: Finding[] = [];
  if (!o.refreshes) {
    findings.push({
      check: 'oauth.app',
      status: 'warning',
      detail: `${o.records.length} OAuth record(s) stored, but GHL_CLIENT_ID and GHL_CLIENT_SECRET are not both set here: workers on this host do not use them`,
      fix: "set the app's GHL_CLIENT_ID and GHL_CLIENT_SECRET on every worker host",
    });
  }
  const failing = o.records
    .filter((r) => r.revoked === undefined && r.retryAt > now)
    .map((r) => `${r.owner.kind === 'company' ? 'agency ' : ''}${r.owner.id} (${r.failures}x: ${r.lastError ?? '?'})`);
  if (failing.length > 0) {
    findings.push({
      check: 'oauth.refresh',
      status: 'warning',
      detail: `refreshes failing for now: ${named(failing)}; their tokens are used until they expire, then their messages wait`,
      fix: 'see `ingest auth status`; HighLevel was unavailable, or refused the app’s credentials (check GHL_CLIENT_ID and GHL_CLIENT_SECRET)',
    });
  }
  // A location whose token comes from GHL_TOKENS_FILE does not use its OAuth record.
  const usedBy = (r: OAuthRecordInfo) => !(r.owner.kind === 'location' && t.file.kind === 'read' && t.file.locations.has(r.owner.id));
  const live = o.records.filter((r) => r.revoked === undefined && usedBy(r));
  const unknown: string[] = [];
  const lacking = new Map<ScopeNeed, string[]>();
  for (const r of live) {
    const had = scopesOf(r, o.records);
    const label = `${r.owner.kind === 'company' ? 'agency ' : ''}${r.owner.id}`;
    if (had === undefined) {
      unknown.push(label);
      continue;
    }
    for (const need of SCOPE_NEEDS) {
      if ((need.of === 'company' && r.owner.kind !== 'company') || (need.reconcile === true && !t.reconcile)) continue;
      if (!had.scopes.includes(need.scope)) lacking.set(need, [...(lacking.get(need) ?? []), `${label}${had.inherited ? ' (its agency’s scopes)' : ''}`]);
    }
  }
  for (const [need, who] of lacking) {
    findings.push({
      check: `oauth.scope.${need.scope}`,
      status: need.status,
      detail: `${who.length} token(s) lack ${need.scope}, needed for ${need.for}: ${named(who)}`,
      fix: `add ${need.scope} to the app's scopes in HighLevel's marketplace settings, then have each location authorise it again (install it again)`,
    });
  }
  if (unknown.length > 0) {
    findings.push({
      check: 'oauth.scopes-unknown',
      status: 'warning',
      detail: `scopes not known yet for ${named(unknown)}: they are recorded when HighLevel grants a token (an install, a refresh), and \`auth import\` brings none`,
      fix: "they are known after the next refresh (a worker refreshes a token it needs near its end); meanwhile check the app's scopes in HighLevel's marketplace settings",
    });
  }
  if (lacking.size === 0 && unknown.length < live.length) {
    findings.push({ check: 'oauth.scopes', status: 'ok', detail: `${live.length - unknown.length} token(s) have every scope they need` });
  }
  return findings;
}
